"""Due rows, retries with backoff, dead letters, and domain events delivered only after commit."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from siyu import subscriptions
from siyu.db.session import transaction
from siyu.jobs.models import Job
from siyu.jobs.registry import job_handler
from siyu.jobs.service import claim_due_jobs, enqueue, publish, retry_dead_job, schedule_periodic_ticks
from siyu.jobs.worker import run_due_jobs
from siyu.kit.clock import FrozenClock

calls: list[tuple[str, dict[str, Any]]] = []
failures: dict[str, int] = {}


@job_handler("test.record")
def _record(session: Session, payload: dict[str, Any]) -> None:
    calls.append(("record", payload))


@job_handler("test.flaky")
def _flaky(session: Session, payload: dict[str, Any]) -> None:
    failures[payload["name"]] = failures.get(payload["name"], 0) + 1
    if failures[payload["name"]] <= payload["fail_times"]:
        raise RuntimeError(f"boom {failures[payload['name']]}")
    calls.append(("flaky", payload))


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    failures.clear()


def _job(db: Session) -> Job:
    job = db.scalar(select(Job).order_by(Job.id.desc()))
    assert job is not None
    return job


def test_due_job_runs_once(clean_engine: Engine, db: Session) -> None:
    with transaction(clean_engine) as session:
        enqueue(session, "test.record", {"n": 1})
    assert run_due_jobs(clean_engine) == 1
    assert run_due_jobs(clean_engine) == 0
    assert calls == [("record", {"n": 1})]
    assert _job(db).state == "done"


def test_job_waits_until_due(clean_engine: Engine, clock: FrozenClock) -> None:
    with transaction(clean_engine) as session:
        enqueue(session, "test.record", {"n": 2}, due_at=clock.now() + timedelta(hours=1))
    assert run_due_jobs(clean_engine) == 0
    clock.advance(timedelta(hours=1))
    assert run_due_jobs(clean_engine) == 1


def test_same_key_is_enqueued_once(clean_engine: Engine, db: Session) -> None:
    with transaction(clean_engine) as session:
        enqueue(session, "test.record", {"n": 1}, key="once")
        enqueue(session, "test.record", {"n": 2}, key="once")
    run_due_jobs(clean_engine)
    assert calls == [("record", {"n": 1})]


def test_failure_retries_with_backoff_then_succeeds(clean_engine: Engine, db: Session, clock: FrozenClock) -> None:
    with transaction(clean_engine) as session:
        enqueue(session, "test.flaky", {"name": "a", "fail_times": 2})
    run_due_jobs(clean_engine)
    job = _job(db)
    assert (job.state, job.attempts) == ("pending", 1)
    assert job.last_error and "boom 1" in job.last_error
    assert job.due_at > clock.now()
    for _ in range(2):
        clock.advance(timedelta(hours=2))
        run_due_jobs(clean_engine)
    db.expire_all()
    assert _job(db).state == "done"
    assert calls == [("flaky", {"name": "a", "fail_times": 2})]


def test_exhausted_job_becomes_dead_and_can_be_retried(clean_engine: Engine, db: Session,
                                                       clock: FrozenClock) -> None:
    with transaction(clean_engine) as session:
        enqueue(session, "test.flaky", {"name": "b", "fail_times": 3}, max_attempts=3)
    for _ in range(3):
        run_due_jobs(clean_engine)
        clock.advance(timedelta(hours=2))
    job = _job(db)
    assert (job.state, job.attempts) == ("dead", 3)
    with transaction(clean_engine) as session:
        retry_dead_job(session, job.id)
    run_due_jobs(clean_engine)
    db.expire_all()
    assert _job(db).state == "done"


def test_unknown_kind_goes_to_dead_letters_not_a_crash(clean_engine: Engine, db: Session,
                                                      clock: FrozenClock) -> None:
    with transaction(clean_engine) as session:
        enqueue(session, "test.nobody_handles_this", {}, max_attempts=1)
    run_due_jobs(clean_engine)
    job = _job(db)
    assert job.state == "dead" and "no handler" in (job.last_error or "")


def test_domain_event_reaches_subscribers_only_after_commit(clean_engine: Engine, db: Session,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(subscriptions.SUBSCRIPTIONS, "test_happened", ["test.record", "test.flaky"])
    with pytest.raises(RuntimeError), transaction(clean_engine) as session:
        publish(session, "test_happened", {"name": "rolled", "fail_times": 0}, workspace_id=1)
        raise RuntimeError("the transaction fails")
    assert run_due_jobs(clean_engine) == 0
    with transaction(clean_engine) as session:
        publish(session, "test_happened", {"name": "c", "fail_times": 1}, workspace_id=1, key="evt-1")
        publish(session, "test_happened", {"name": "c", "fail_times": 1}, workspace_id=1, key="evt-1")
    run_due_jobs(clean_engine)
    assert [c[0] for c in calls] == ["record"]  # flaky failed once; record is not re-run with it


def test_crashed_worker_lease_expires_and_job_is_reclaimed(clean_engine: Engine, clock: FrozenClock) -> None:
    with transaction(clean_engine) as session:
        enqueue(session, "test.record", {"n": 3})
    with transaction(clean_engine) as session:
        assert len(claim_due_jobs(session)) == 1  # claimed, then the worker "dies"
    assert run_due_jobs(clean_engine) == 0
    clock.advance(timedelta(minutes=6))
    assert run_due_jobs(clean_engine) == 1
    assert calls == [("record", {"n": 3})]


def test_periodic_ticks_are_enqueued_once_per_slot(clean_engine: Engine, db: Session) -> None:
    with transaction(clean_engine) as session:
        schedule_periodic_ticks(session)
        schedule_periodic_ticks(session)
    kinds = list(db.scalars(select(Job.kind)))
    assert sorted(kinds) == sorted(kind for kind, _ in subscriptions.SCHEDULES)


@pytest.mark.pg
def test_postgres_workers_never_claim_the_same_job(pg_engine: Engine) -> None:
    with transaction(pg_engine) as session:
        session.execute(Job.__table__.delete())
        for n in range(200):
            enqueue(session, "test.record", {"n": n})
    claimed: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def claim_all() -> None:
        barrier.wait()
        while True:
            with transaction(pg_engine) as session:
                jobs = claim_due_jobs(session, limit=7)
            if not jobs:
                return
            with lock:
                claimed.extend(job.id for job in jobs)

    threads = [threading.Thread(target=claim_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == 200
    assert len(set(claimed)) == 200
    with transaction(pg_engine) as session:
        session.execute(Job.__table__.delete())
