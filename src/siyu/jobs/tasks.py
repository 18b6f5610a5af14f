from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from siyu.jobs.registry import job_handler
from siyu.jobs.service import purge_finished_jobs


@job_handler("jobs.purge_finished")
def purge_finished(session: Session, payload: dict[str, Any]) -> None:
    purge_finished_jobs(session)
