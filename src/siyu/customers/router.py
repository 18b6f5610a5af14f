from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from siyu.customers import service
from siyu.customers.schemas import (
    CustomerDetailOut,
    CustomerListOut,
    CustomerOut,
    IdentityOut,
    LinkOut,
    RollupOut,
    TimelineOut,
)
from siyu.events.service import timeline
from siyu.web.deps import Db, Reader, Writer

router = APIRouter(prefix="/api/v1", tags=["customers"])


@router.get("/customers", response_model=CustomerListOut)
def list_customers(caller: Reader, db: Db, q: str | None = None, phone: str | None = None,
                   identity_type: str | None = None, identity_value: str | None = None,
                   cursor: str | None = None, limit: int = Query(50, ge=1, le=200)) -> dict[str, Any]:
    page = service.list_customers(db, caller.workspace.id, query=q, phone=phone, identity_type=identity_type,
                                  identity_value=identity_value, cursor=cursor, limit=limit)
    return {"items": [CustomerOut.model_validate(c) for c in page.items], "next_cursor": page.next_cursor}


@router.get("/customers/{customer_id}", response_model=CustomerDetailOut)
def get_customer(caller: Reader, db: Db, customer_id: int) -> dict[str, Any]:
    profile = service.customer_profile(db, caller.workspace.id, customer_id)
    return {**CustomerOut.model_validate(profile.customer).model_dump(),
            "identities": [IdentityOut.model_validate(i) for i in profile.identities],
            "rollup": RollupOut(**profile.rollup), "merged_ids": profile.merged_ids,
            "requested_id": profile.requested_id}


@router.get("/customers/{customer_id}/timeline", response_model=TimelineOut)
def customer_timeline(caller: Reader, db: Db, customer_id: int, before: int | None = None,
                      limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
    survivor = service.resolve_customer_id(db, caller.workspace.id, customer_id)
    items = timeline(db, caller.workspace.id, survivor, limit=limit, before_id=before)
    return {"items": items, "next_before": items[-1].id if len(items) == limit else None}


@router.get("/identity-links", response_model=list[LinkOut])
def list_links(caller: Reader, db: Db, status: str = "pending") -> list[Any]:
    return list(service.list_links(db, caller.workspace.id, status))


@router.post("/identity-links/{link_id}/confirm", response_model=LinkOut)
def confirm_link(caller: Writer, db: Db, link_id: int) -> Any:
    return service.decide_link(db, caller.workspace, link_id, confirm=True, actor=caller.actor)


@router.post("/identity-links/{link_id}/reject", response_model=LinkOut)
def reject_link(caller: Writer, db: Db, link_id: int) -> Any:
    return service.decide_link(db, caller.workspace, link_id, confirm=False, actor=caller.actor)
