"""Loading the demo brand into a workspace: owner login, API key and a year of events.

Re-running is cheap and safe: the workspace, user and key are reused, and a workspace already
loaded with the same seed and size is left as it is (event ids are stable anyway, so a re-ingest
would only find duplicates).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn
from sqlalchemy import Engine

from siyu.config import get_settings
from siyu.db.session import transaction
from siyu.demo.generator import DemoSpec, generate_demo_events
from siyu.demo.loyalty import set_up_loyalty
from siyu.events.service import ingest_events
from siyu.workspaces.errors import WorkspaceNotFound
from siyu.workspaces.models import Workspace
from siyu.workspaces.service import (
    context_of,
    create_api_key,
    create_user,
    create_workspace,
    get_workspace,
    update_workspace_settings,
)

BATCH = 2000
DEMO_NAME = "小林母婴美妆 (demo)"


@dataclass
class DemoResult:
    slug: str
    customers: int
    events: int
    accepted: int
    email: str
    password: str
    api_key: str | None
    members: int = 0


def _batches(events: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while batch := list(islice(events, size)):
        yield batch


def _ensure_workspace(engine: Engine, slug: str, email: str, password: str) -> Workspace:
    with transaction(engine) as session:
        try:
            workspace = get_workspace(session, slug)
        except WorkspaceNotFound:
            workspace = create_workspace(session, slug, DEMO_NAME)
            create_user(session, workspace, email, "演示店长", password, "owner")
        return workspace


def _demo_api_key(engine: Engine, workspace_id: int) -> str:
    """The demo key is created once and kept in the data directory so every run can print it."""
    settings = get_settings()
    store = settings.data_dir / "demo-credentials.json"
    saved = json.loads(store.read_text()) if store.exists() else {}
    key = saved.get(str(workspace_id))
    if key:
        return str(key)
    with transaction(engine) as session:
        _, secret = create_api_key(session, get_workspace(session, workspace_id), "demo", "owner")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps({**saved, str(workspace_id): secret}))
    store.chmod(0o600)
    return secret


def load_demo(engine: Engine, *, customers: int, seed: int, slug: str, password: str, end: datetime,
              progress: Console | None = None) -> DemoResult:
    email = f"owner@{slug}.siyu.local"
    workspace = _ensure_workspace(engine, slug, email, password)
    api_key = _demo_api_key(engine, workspace.id)
    marker = {"seed": seed, "customers": customers}
    if (workspace.settings or {}).get("demo") == marker:
        return DemoResult(slug, customers, 0, 0, email, password, api_key)
    ctx = context_of(workspace)
    total = accepted = 0
    spec = DemoSpec(customers=customers, seed=seed, end=end)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=progress,
                  disable=progress is None) as bar:
        task = bar.add_task("generating the demo brand", total=None)
        for batch in _batches(generate_demo_events(spec), BATCH):
            with transaction(engine) as session:
                results = ingest_events(session, ctx, batch, max_batch=None, actor="demo")
            total += len(batch)
            accepted += sum(1 for r in results if r.status == "accepted")
            bar.update(task, description=f"demo brand: {total:,} events ingested")
    members = set_up_loyalty(engine, workspace.id)
    with transaction(engine) as session:
        update_workspace_settings(session, get_workspace(session, workspace.id), {"demo": marker})
    return DemoResult(slug, customers, total, accepted, email, password, api_key, members)
