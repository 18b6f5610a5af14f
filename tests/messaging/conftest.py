"""Helpers of the messaging tests: customers with reachable identities, templates, dispatch."""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

import siyu.db
from siyu.events.service import ingest_events
from siyu.messaging.dispatch import DispatchStats, dispatch_due
from siyu.messaging.models import OutboxMessage, PlatformQuota, SandboxMessage
from siyu.messaging.settings import update_policy
from siyu.messaging.template_service import create_template
from siyu.workspaces.service import WorkspaceContext
from tests.conftest import NOW

_people = itertools.count(1)


def make_customer(db: Session, ws: WorkspaceContext, *, name: str = "王小丫", phone: str | None = None,
                  email: str | None = None, unionid: str | None = None) -> int:
    """A customer made the way customers arrive: an identify event with identities and traits."""
    n = next(_people)
    identities: list[dict[str, Any]] = [{"type": "wechat_unionid", "value": unionid or f"u-msg-{n}"}]
    if phone:
        identities.append({"type": "phone", "value": phone, "verified": True})
    if email:
        identities.append({"type": "email", "value": email, "verified": True})
    (result,) = ingest_events(db, ws, [{"id": f"identify-{n}-{name}", "type": "identify",
                                        "occurred_at": "2026-11-01T10:00:00+08:00", "identities": identities,
                                        "traits": {"name": name}}])
    assert result.status == "accepted", result
    db.commit()
    assert result.customer_id is not None
    return result.customer_id


def no_policy_limits(db: Session, ws: WorkspaceContext) -> None:
    """A workspace whose policy stays out of the way (tests of other rules turn theirs on)."""
    update_policy(db, ws.id, {"quiet_hours": None, "frequency_caps": [], "fatigue": None})
    db.commit()


def sandbox_template(db: Session, ws: WorkspaceContext, body: str = "{{ customer.name }}，本周新品上架",
                     name: str = "新品", **kwargs: Any) -> int:
    template = create_template(db, ws, name=name, channel=kwargs.pop("channel", "sandbox"),
                               kind=kwargs.pop("kind", "text"), body=body, actor="test", **kwargs)
    db.commit()
    return template.id


def states(db: Session, ws: WorkspaceContext) -> dict[str, int]:
    db.expire_all()
    rows = db.execute(select(OutboxMessage.state, func.count()).where(OutboxMessage.workspace_id == ws.id)
                      .group_by(OutboxMessage.state))
    return {state: count for state, count in rows}


def sandbox_count(db: Session, ws: WorkspaceContext, customer_id: int | None = None) -> int:
    stmt = select(func.count()).select_from(SandboxMessage).where(SandboxMessage.workspace_id == ws.id)
    if customer_id is not None:
        stmt = stmt.where(SandboxMessage.customer_id == customer_id)
    return int(db.scalar(stmt) or 0)


MIGRATION = Path(siyu.db.__file__).parent / "migrations" / "versions" / "2026_11_25_0004_messaging.py"


@pytest.fixture(autouse=True)
def default_quotas(clean_engine: Engine) -> None:
    """The platform quotas migration 0004 ships (the suite empties every table between tests)."""
    spec = importlib.util.spec_from_file_location("messaging_migration", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with clean_engine.begin() as conn:
        conn.execute(insert(PlatformQuota), [{**q, "created_at": NOW} for q in module.DEFAULT_QUOTAS])


@pytest.fixture
def dispatch(engine: Engine) -> Callable[[], DispatchStats]:
    return lambda: dispatch_due(engine)
