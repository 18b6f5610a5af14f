"""Arranging customers and asking rules about them, by unionid so tests read like the scenario."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.customers.models import Identity
from siyu.events.service import ingest_events
from siyu.kit import clock
from siyu.rules.compiler import compile_rule
from siyu.rules.tree import parse_rule
from siyu.workspaces.service import WorkspaceContext


def ingest(db: Session, ctx: WorkspaceContext, *events: dict[str, Any]) -> None:
    results = ingest_events(db, ctx, list(events), max_batch=None)
    assert all(r.status == "accepted" for r in results), [r.as_dict() for r in results]
    db.commit()


def person(unionid: str, *, traits: dict[str, Any] | None = None, at: str = "2026-01-01T10:00:00+08:00",
           extra: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"id": f"identify-{unionid}", "type": "identify", "occurred_at": at,
            "identities": [{"type": "wechat_unionid", "value": unionid}, *(extra or [])], "traits": traits or {}}


def ids_by_unionid(db: Session, ctx: WorkspaceContext) -> dict[str, int]:
    return dict(db.execute(select(Identity.value, Identity.customer_id).where(
        Identity.workspace_id == ctx.id, Identity.type == "wechat_unionid")).all())  # type: ignore[arg-type]


def who(db: Session, ctx: WorkspaceContext, rule: Any) -> set[str]:
    """The unionids of the customers a rule selects now."""
    compiled = compile_rule(parse_rule(rule), workspace_id=ctx.id, timezone=ctx.timezone,
                            dialect=db.get_bind().dialect.name, now=clock.now())
    names = {cid: unionid for unionid, cid in ids_by_unionid(db, ctx).items()}
    return {names[cid] for cid in db.scalars(compiled.select())}
