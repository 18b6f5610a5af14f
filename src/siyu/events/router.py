from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from siyu.events import service
from siyu.events.catalog import catalogue
from siyu.events.schemas import BatchIn, BatchOut, EventTypeIn
from siyu.web.deps import Db, Ingestor, Reader, Writer

router = APIRouter(prefix="/api/v1", tags=["events"])


def _summary(results: list[service.ItemResult]) -> dict[str, Any]:
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for result in results:
        counts[result.status] += 1
    return {**counts, "results": [r.as_dict() for r in results]}


@router.post("/events", summary="Ingest one event", responses={200: {"description": "duplicate (already stored)"},
                                                             201: {"description": "accepted"}})
def ingest_one(caller: Ingestor, db: Db, event: dict[str, Any] = Body(...)) -> JSONResponse:
    (result,) = service.ingest_events(db, caller.workspace, [event], actor=caller.actor)
    body = result.as_dict()
    if result.status == "rejected":
        error = body["error"]
        return JSONResponse({"status": 422, "code": error["code"], "message": error["message"],
                             "field": error["field"], "result": body}, status_code=422)
    return JSONResponse(body, status_code=201 if result.status == "accepted" else 200)


@router.post("/events/batch", response_model=BatchOut, summary="Ingest up to 1,000 events (partial acceptance)")
def ingest_batch(caller: Ingestor, db: Db, batch: BatchIn) -> dict[str, Any]:
    return _summary(service.ingest_events(db, caller.workspace, batch.events, actor=caller.actor))


@router.get("/event-types", summary="The catalogue of standard event types and the workspace's custom ones")
def event_types(caller: Reader, db: Db) -> dict[str, Any]:
    return {"standard": catalogue(),
            "custom": sorted(service.custom_event_type_names(db, caller.workspace.id))}


@router.post("/event-types", status_code=201, summary="Register a custom event type (accepted in strict mode)")
def register_event_type(caller: Writer, db: Db, body: EventTypeIn) -> dict[str, Any]:
    item = service.register_event_type(db, caller.workspace.id, body.name, body.description,
                                       body.required_properties)
    return {"name": item.name, "description": item.description}
