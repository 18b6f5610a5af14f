"""The worker: claims due jobs and runs each in its own transaction.

`siyu worker` runs this loop in its own process (any number of them on PostgreSQL); `siyu serve`
on SQLite runs one in a background thread.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Engine

from siyu.db.session import transaction
from siyu.jobs.models import Job
from siyu.jobs.registry import due_pollers, handler_for, load_task_modules
from siyu.jobs.service import claim_due_jobs, mark_done, mark_failed, schedule_periodic_ticks

log = logging.getLogger("siyu.worker")


class UnknownJobKind(Exception):
    pass


def run_job(engine: Engine, job: Job) -> bool:
    """Run one claimed job; True when it succeeded."""
    try:
        with transaction(engine) as session:
            handler = handler_for(job.kind)
            if handler is None:
                raise UnknownJobKind(f"no handler registered for job kind {job.kind!r}")
            handler(session, dict(job.payload))
            mark_done(session, job.id)
        return True
    except Exception as exc:  # any failure is recorded on the job and retried with backoff
        log.warning("job %s (%s) failed: %s", job.id, job.kind, exc)
        with transaction(engine) as session:
            mark_failed(session, job.id, exc)
        return False


def run_due_jobs(engine: Engine, batch: int = 20, max_rounds: int | None = None) -> int:
    """Claim and run due jobs until none are due; returns how many ran. Tests call this directly."""
    ran = 0
    rounds = 0
    while max_rounds is None or rounds < max_rounds:
        rounds += 1
        with transaction(engine) as session:
            jobs = claim_due_jobs(session, batch)
        if not jobs:
            break
        for job in jobs:
            run_job(engine, job)
            ran += 1
    return ran


class Worker:
    def __init__(self, engine: Engine, poll_seconds: float = 0.5, tick_seconds: float = 30.0) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds
        self.tick_seconds = tick_seconds
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self._last_tick = 0.0

    def run_forever(self) -> None:
        load_task_modules()
        while not self.stopping.is_set():
            try:
                self._tick_if_due()
                ran = run_due_jobs(self.engine, max_rounds=10)
                ran += sum(poller(self.engine) for poller in due_pollers())
            except Exception:  # keep the loop alive; the store may be briefly unavailable
                log.exception("worker loop error")
                ran = 0
            if ran == 0:
                self.wake.wait(self.poll_seconds)
                self.wake.clear()

    def _tick_if_due(self) -> None:
        if time.monotonic() - self._last_tick < self.tick_seconds:
            return
        with transaction(self.engine) as session:
            schedule_periodic_ticks(session)
        self._last_tick = time.monotonic()

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="siyu-worker", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
