from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from siyu.jobs import service
from siyu.web.deps import Db, Reader, Writer

router = APIRouter(prefix="/api/v1", tags=["jobs"])


def _job(job: Any) -> dict[str, Any]:
    return {"id": job.id, "kind": job.kind, "state": job.state, "attempts": job.attempts,
            "due_at": job.due_at, "last_error": job.last_error, "payload": job.payload}


@router.get("/jobs")
def list_jobs(caller: Reader, db: Db, state: str | None = None, limit: int = 100) -> dict[str, Any]:
    return {"counts": service.job_counts(db),
            "items": [_job(j) for j in service.list_jobs(db, state, min(limit, 500), caller.workspace.id)]}


@router.post("/jobs/{job_id}/retry")
def retry_job(caller: Writer, db: Db, job_id: int) -> dict[str, Any]:
    return _job(service.retry_dead_job(db, job_id, caller.workspace.id))
