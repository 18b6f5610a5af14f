"""Helpers of the messaging tests: customers with reachable identities, templates, dispatch."""

from __future__ import annotations

import importlib.util
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
                      .group_by(OutboxMessage.state)).all()
    db.commit()  # a read on SQLite holds the write lock (BEGIN IMMEDIATE) until the transaction ends
    return {state: count for state, count in rows}


def sandbox_count(db: Session, ws: WorkspaceContext, customer_id: int | None = None) -> int:
    stmt = select(func.count()).select_from(SandboxMessage).where(SandboxMessage.workspace_id == ws.id)
    if customer_id is not None:
        stmt = stmt.where(SandboxMessage.customer_id == customer_id)
    count = int(db.scalar(stmt) or 0)
    db.commit()
    return count


def reload(db: Session, message: OutboxMessage) -> OutboxMessage:
    """The message as stored now (and the test's transaction ended, so workers can write)."""
    db.refresh(message)
    db.commit()
    return message


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


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] = field(default_factory=lambda: {"code": "OK", "message_id": "m-1"})
    delay: float = 0.0


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


class LoopbackServer:
    """A real HTTP server on 127.0.0.1 that answers from a script and records every request."""

    def __init__(self, replies: list[Reply] | None = None) -> None:
        self.replies = list(replies or [])
        self.seen: list[Seen] = []
        self.default = Reply()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                server.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()},
                                        self.rfile.read(length)))
                reply = server.replies.pop(0) if server.replies else server.default
                if reply.delay:
                    time.sleep(reply.delay)
                payload = json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/send"

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


SMS_SECRET = "sms-secret-0123456789"
WEBHOOK_SECRET = "webhook-secret-0123456789"


def configure_sms(db: Session, ws: WorkspaceContext, url: str, **config: Any) -> None:
    from siyu.messaging.settings import configure_channel

    configure_channel(db, ws.id, "sms", {"retry_initial_seconds": 0, "retry_max_seconds": 0, "retry_tries": 3,
                                         "config": {"url": url, "app_key": "app-1", "secret": SMS_SECRET,
                                                    "sign_name": "小林母婴", **config}})
    db.commit()


def configure_webhook(db: Session, ws: WorkspaceContext, url: str, **config: Any) -> None:
    from siyu.messaging.settings import configure_channel

    configure_channel(db, ws.id, "webhook", {"retry_initial_seconds": 0, "retry_max_seconds": 0, "retry_tries": 2,
                                             "config": {"url": url, "secret": WEBHOOK_SECRET, **config}})
    db.commit()
