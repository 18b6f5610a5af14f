from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response

from siyu.customers.schemas import CustomerListOut, CustomerOut
from siyu.segments import service as segments
from siyu.tags import presets, service
from siyu.tags.models import Tag
from siyu.tags.schemas import (
    CustomerTagOut,
    TaggingIn,
    TaggingOut,
    TagGroupIn,
    TagGroupOut,
    TagGroupPatch,
    TagHistoryOut,
    TagIn,
    TagOut,
    TagPatch,
)
from siyu.web.deps import Db, Ingestor, Reader, Writer

router = APIRouter(prefix="/api/v1", tags=["tags"])


def tag_out(tag: Tag) -> TagOut:
    return TagOut.model_validate({**{c: getattr(tag, c) for c in TagOut.model_fields if c != "freshness"},
                                  "freshness": service.freshness(tag)})


@router.get("/tag-groups", response_model=list[TagGroupOut])
def list_groups(caller: Reader, db: Db) -> Any:
    return service.list_groups(db, caller.workspace.id)


@router.post("/tag-groups", response_model=TagGroupOut, status_code=201)
def create_group(caller: Writer, db: Db, body: TagGroupIn) -> Any:
    return service.create_group(db, caller.workspace, body.name, body.description, body.position)


@router.patch("/tag-groups/{group_id}", response_model=TagGroupOut)
def update_group(caller: Writer, db: Db, group_id: int, body: TagGroupPatch) -> Any:
    return service.update_group(db, caller.workspace, group_id, **body.model_dump(exclude_none=True))


@router.delete("/tag-groups/{group_id}", status_code=204)
def delete_group(caller: Writer, db: Db, group_id: int) -> Response:
    service.delete_group(db, caller.workspace, group_id)
    return Response(status_code=204)


@router.get("/tags", response_model=list[TagOut])
def list_tags(caller: Reader, db: Db, group_id: int | None = None, kind: str | None = None) -> Any:
    return [tag_out(t) for t in service.list_tags(db, caller.workspace.id, group_id=group_id, kind=kind)]


@router.post("/tags", response_model=TagOut, status_code=201,
             summary="Create a manual tag, or an auto tag (with a rule) that the worker keeps true")
def create_tag(caller: Writer, db: Db, body: TagIn) -> Any:
    return tag_out(service.create_tag(db, caller.workspace, actor=caller.actor, **body.model_dump()))


@router.post("/tags/presets", response_model=list[TagOut], status_code=201,
             summary="Install the preset auto tags (高客单价, 母婴品类偏好, 沉睡客户, 新客); safe to repeat")
def install_presets(caller: Writer, db: Db) -> Any:
    return [tag_out(t) for t in presets.install_presets(db, caller.workspace, actor=caller.actor)]


@router.get("/tags/{tag_id}", response_model=TagOut)
def get_tag(caller: Reader, db: Db, tag_id: int) -> Any:
    return tag_out(service.get_tag(db, caller.workspace.id, tag_id))


@router.patch("/tags/{tag_id}", response_model=TagOut)
def update_tag(caller: Writer, db: Db, tag_id: int, body: TagPatch) -> Any:
    return tag_out(service.update_tag(db, caller.workspace, tag_id, actor=caller.actor,
                                      **body.model_dump(exclude_none=True)))


@router.delete("/tags/{tag_id}", status_code=204,
               responses={409: {"description": "the tag is used by rules or journeys (listed in details)"}})
def delete_tag(caller: Writer, db: Db, tag_id: int) -> Response:
    service.delete_tag(db, caller.workspace, tag_id, caller.actor)
    return Response(status_code=204)


@router.post("/tags/{tag_id}/customers", response_model=TaggingOut,
             summary="Put a manual tag on customers: by id, by identity, or every member of a segment")
def tag_customers(caller: Ingestor, db: Db, tag_id: int, body: TaggingIn) -> Any:
    if body.segment_id is not None:
        return segments.tag_members(db, caller.workspace, body.segment_id, tag_id, actor=caller.actor).as_dict()
    return service.tag_customers(db, caller.workspace, tag_id, actor=caller.actor, customer_ids=body.customer_ids,
                                 identities=[(i.type, i.value) for i in body.identities]).as_dict()


@router.post("/tags/{tag_id}/customers/remove", response_model=TaggingOut)
def untag_customers(caller: Ingestor, db: Db, tag_id: int, body: TaggingIn) -> Any:
    if body.segment_id is not None:
        return segments.tag_members(db, caller.workspace, body.segment_id, tag_id, actor=caller.actor,
                                    remove=True).as_dict()
    return service.untag_customers(db, caller.workspace, tag_id, actor=caller.actor,
                                   customer_ids=body.customer_ids,
                                   identities=[(i.type, i.value) for i in body.identities]).as_dict()


@router.post("/tags/{tag_id}/customers/import", response_model=TaggingOut,
             summary="Tag (or with remove=true untag) the customers of a CSV body: customer_id, type+value, "
                     "or identity type columns")
async def import_tagging(caller: Ingestor, db: Db, tag_id: int, request: Request, remove: bool = False) -> Any:
    ids, pairs = service.parse_customer_csv((await request.body()).decode("utf-8-sig"))
    change = service.untag_customers if remove else service.tag_customers
    return change(db, caller.workspace, tag_id, actor=caller.actor, customer_ids=ids, identities=pairs).as_dict()


@router.get("/tags/{tag_id}/customers", response_model=CustomerListOut)
def tagged_customers(caller: Reader, db: Db, tag_id: int, cursor: str | None = None,
                     limit: int = Query(50, ge=1, le=200)) -> dict[str, Any]:
    page = service.tagged_customers(db, caller.workspace.id, tag_id, cursor, limit)
    return {"items": [CustomerOut.model_validate(c) for c in page.items], "next_cursor": page.next_cursor}


@router.get("/customers/{customer_id}/tags", response_model=list[CustomerTagOut])
def customer_tags(caller: Reader, db: Db, customer_id: int) -> Any:
    return [{"tag_id": t.id, "name": t.name, "kind": t.kind, "group_id": t.group_id, "source": a.source,
             "added_by": a.added_by, "added_at": a.added_at}
            for t, a in service.tags_of(db, caller.workspace.id, customer_id)]


@router.get("/customers/{customer_id}/tag-history", response_model=list[TagHistoryOut])
def customer_tag_history(caller: Reader, db: Db, customer_id: int, limit: int = Query(100, ge=1, le=500)) -> Any:
    return service.tag_history_of(db, caller.workspace.id, customer_id, limit)
