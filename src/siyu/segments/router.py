from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from siyu.customers.schemas import CustomerListOut, CustomerOut
from siyu.segments import layering, service
from siyu.segments.models import Segment
from siyu.segments.schemas import (
    LayersOut,
    LifecycleOut,
    MembersIn,
    MembersOut,
    PreviewOut,
    RefreshOut,
    RfmOut,
    RuleCheckOut,
    RuleIn,
    SegmentIn,
    SegmentOut,
    SegmentPatch,
    SizeOut,
    SnapshotIn,
)
from siyu.tags.service import freshness, parse_customer_csv
from siyu.web.deps import Db, Reader, Writer

router = APIRouter(prefix="/api/v1", tags=["segments"])


def segment_out(segment: Segment) -> SegmentOut:
    values = {c: getattr(segment, c) for c in SegmentOut.model_fields if c != "freshness"}
    return SegmentOut.model_validate({**values, "freshness": freshness(segment)})


# -- rules ---------------------------------------------------------------------------------------

@router.post("/rules/validate", response_model=RuleCheckOut,
             summary="Check a rule; errors name the path of the failing node (all[2].window: must be positive)")
def validate_rule(caller: Reader, db: Db, body: RuleIn) -> Any:
    check = service.validate_rule(db, caller.workspace, body.rule, segment_id=body.segment_id, tag_id=body.tag_id)
    return {"valid": check.valid, "errors": [i.as_dict() for i in check.issues], "rule": check.rule}


@router.post("/rules/preview", response_model=PreviewOut,
             summary="How many customers an unsaved rule selects, with a sample of 20")
def preview_rule(caller: Reader, db: Db, body: RuleIn) -> Any:
    preview = service.preview_rule(db, caller.workspace, body.rule)
    return {"count": preview.count, "sample": [CustomerOut.model_validate(c) for c in preview.sample]}


# -- segments ------------------------------------------------------------------------------------

@router.get("/segments", response_model=list[SegmentOut])
def list_segments(caller: Reader, db: Db, kind: str | None = None) -> Any:
    return [segment_out(s) for s in service.list_segments(db, caller.workspace.id, kind)]


@router.post("/segments", response_model=SegmentOut, status_code=201,
             summary="Create a dynamic segment (rule, refreshed by the worker) or a static one (a list)")
def create_segment(caller: Writer, db: Db, body: SegmentIn) -> Any:
    return segment_out(service.create_segment(
        db, caller.workspace, name=body.name, actor=caller.actor, kind=body.kind, rule=body.rule,
        description=body.description, refresh_minutes=body.refresh_minutes, customer_ids=body.customer_ids,
        identities=[(i.type, i.value) for i in body.identities]))


@router.get("/segments/{segment_id}", response_model=SegmentOut)
def get_segment(caller: Reader, db: Db, segment_id: int) -> Any:
    return segment_out(service.get_segment(db, caller.workspace.id, segment_id))


@router.patch("/segments/{segment_id}", response_model=SegmentOut)
def update_segment(caller: Writer, db: Db, segment_id: int, body: SegmentPatch) -> Any:
    return segment_out(service.update_segment(db, caller.workspace, segment_id, actor=caller.actor,
                                              **body.model_dump(exclude_none=True)))


@router.delete("/segments/{segment_id}", status_code=204,
               responses={409: {"description": "the segment is used by rules or journeys (listed in details)"}})
def delete_segment(caller: Writer, db: Db, segment_id: int) -> Response:
    service.delete_segment(db, caller.workspace, segment_id, caller.actor)
    return Response(status_code=204)


@router.post("/segments/{segment_id}/refresh", response_model=RefreshOut, status_code=202)
def refresh_segment(caller: Writer, db: Db, segment_id: int) -> Any:
    chain = service.refresh_now(db, caller.workspace, segment_id)
    return {"queued": chain is not None, "chain": chain}


@router.get("/segments/{segment_id}/members", response_model=CustomerListOut)
def segment_members(caller: Reader, db: Db, segment_id: int, cursor: str | None = None,
                    limit: int = Query(50, ge=1, le=200)) -> dict[str, Any]:
    page = service.members(db, caller.workspace.id, segment_id, cursor, limit)
    return {"items": [CustomerOut.model_validate(c) for c in page.items], "next_cursor": page.next_cursor}


@router.post("/segments/{segment_id}/members", response_model=MembersOut,
             summary="Add or remove members of a static segment, by id or identity")
def change_members(caller: Writer, db: Db, segment_id: int, body: MembersIn) -> Any:
    change = service.change_static_members(
        db, caller.workspace, segment_id, actor=caller.actor, add_ids=body.add_customer_ids,
        add_identities=[(i.type, i.value) for i in body.add_identities], remove_ids=body.remove_customer_ids,
        remove_identities=[(i.type, i.value) for i in body.remove_identities])
    return {"added": change.added, "removed": change.removed, "unknown": change.unknown[:100]}


@router.post("/segments/{segment_id}/members/import", response_model=MembersOut,
             summary="Add (or with remove=true remove) the customers of a CSV body to a static segment")
async def import_members(caller: Writer, db: Db, segment_id: int, request: Request, remove: bool = False) -> Any:
    ids, pairs = parse_customer_csv((await request.body()).decode("utf-8-sig"))
    kwargs: dict[str, Any] = ({"remove_ids": ids, "remove_identities": pairs} if remove
                              else {"add_ids": ids, "add_identities": pairs})
    change = service.change_static_members(db, caller.workspace, segment_id, actor=caller.actor, **kwargs)
    return {"added": change.added, "removed": change.removed, "unknown": change.unknown[:100]}


@router.post("/segments/{segment_id}/snapshot", response_model=SegmentOut, status_code=201,
             summary="A static copy of the segment's members as they are now")
def snapshot_segment(caller: Writer, db: Db, segment_id: int, body: SnapshotIn) -> Any:
    return segment_out(service.snapshot_segment(db, caller.workspace, segment_id, name=body.name,
                                                actor=caller.actor))


@router.get("/segments/{segment_id}/sizes", response_model=list[SizeOut])
def segment_sizes(caller: Reader, db: Db, segment_id: int, days: int = Query(30, ge=1, le=366)) -> Any:
    return service.size_trend(db, caller.workspace.id, segment_id, days)


@router.get("/segments/{segment_id}/export.csv", response_class=StreamingResponse,
            summary="Members as CSV: customer_id, name and one column per identity type asked for")
def export_segment(caller: Reader, db: Db, request: Request, segment_id: int,
                   identities: str = Query("", description="comma-separated identity types, e.g. phone,"
                                                           "wecom_external_userid")) -> StreamingResponse:
    segment = service.get_segment(db, caller.workspace.id, segment_id)
    types = [t.strip() for t in identities.split(",") if t.strip()]
    sessions = request.app.state.sessions
    db.commit()  # end this request's unit of work (and SQLite's write lock): the stream reads on its own

    def stream() -> Iterator[str]:
        # Its own read session: the response outlives the request's unit of work.
        with sessions() as session:
            for row in service.export_rows(session, caller.workspace, segment_id, types):
                buffer = io.StringIO()
                csv.writer(buffer).writerow(row)
                yield buffer.getvalue()

    filename = f"segment-{segment.id}.csv"
    return StreamingResponse(stream(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# -- layering ------------------------------------------------------------------------------------

@router.get("/customers/{customer_id}/layers", response_model=LayersOut,
            summary="A customer's tags, segments, lifecycle stage and RFM")
def customer_layers(caller: Reader, db: Db, customer_id: int) -> Any:
    return service.customer_layers(db, caller.workspace.id, customer_id)


@router.get("/lifecycle", response_model=LifecycleOut)
def lifecycle(caller: Reader, db: Db) -> Any:
    return layering.lifecycle_overview(db, caller.workspace)


@router.put("/lifecycle/settings", response_model=LifecycleOut)
def lifecycle_settings(caller: Writer, db: Db, body: dict[str, Any]) -> Any:
    return layering.update_lifecycle_settings(db, caller.workspace, body)


@router.post("/lifecycle/evaluate", response_model=RefreshOut, status_code=202)
def evaluate_lifecycle(caller: Writer, db: Db) -> Any:
    chain = layering.evaluate_lifecycle_later(db, caller.workspace)
    return {"queued": chain is not None, "chain": chain}


@router.get("/rfm", response_model=RfmOut, summary="RFM settings, the last scoring and its matrix")
def rfm(caller: Reader, db: Db) -> Any:
    return layering.rfm_overview(db, caller.workspace)


@router.put("/rfm/settings", response_model=RfmOut)
def rfm_settings(caller: Writer, db: Db, body: dict[str, Any]) -> Any:
    return layering.update_rfm_settings(db, caller.workspace, body)


@router.post("/rfm/score", response_model=RefreshOut, status_code=202)
def score_rfm(caller: Writer, db: Db) -> Any:
    chain = layering.score_rfm_later(db, caller.workspace)
    return {"queued": chain is not None, "chain": chain}
