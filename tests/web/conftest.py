"""Console fixtures: a logged-in TestClient, seeded customers, and for browser tests the real app
served by uvicorn on a free port with headless Chromium (Debian's, never a downloaded one)."""

from __future__ import annotations

import re
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from siyu.db.session import transaction
from siyu.events.service import ingest_events
from siyu.workspaces.service import WorkspaceContext, create_user, get_workspace
from tests.factories import event, order

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TOKEN_PATTERN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = TOKEN_PATTERN.search(html)
    assert match is not None, "the page has no CSRF field"
    return match.group(1)


def login(client: TestClient, email: str, password: str) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    token = csrf_from(client.get("/login").text)
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": token},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return csrf_from(client.get("/").text)


@dataclass
class Console:
    client: TestClient
    token: str

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, **kwargs)

    def post(self, url: str, *, htmx: bool = False, **kwargs: Any) -> Any:
        """An unsafe request the way the console sends it: form field, or header when via HTMX."""
        if htmx:
            headers = {"HX-Request": "true", "X-CSRF-Token": self.token, **kwargs.pop("headers", {})}
            return self.client.post(url, headers=headers, follow_redirects=False, **kwargs)
        data = {"csrf_token": self.token, **kwargs.pop("data", {})}
        return self.client.post(url, data=data, follow_redirects=False, **kwargs)


@pytest.fixture
def console(app: Any, owner: dict[str, str]) -> Iterator[Console]:
    with TestClient(app) as client:
        yield Console(client, login(client, owner["email"], owner["password"]))


@pytest.fixture
def console_as(app: Any, db: Session, workspace: WorkspaceContext) -> Iterator[Any]:
    clients: list[TestClient] = []

    def make(role: str) -> Console:
        email = f"{role}@acme.test"
        create_user(db, get_workspace(db, workspace.id), email, f"{role} user", "correct-horse", role)
        db.commit()
        client = TestClient(app)
        clients.append(client)
        return Console(client, login(client, email, "correct-horse"))

    yield make
    for client in clients:
        client.close()


# -- data ---------------------------------------------------------------------------------------

def ingest(engine: Engine, workspace: WorkspaceContext, events: list[dict[str, Any]]) -> list[Any]:
    """Ingest and commit in a session of its own, so nothing holds the database afterwards."""
    with transaction(engine) as session:
        results = ingest_events(session, workspace, events, max_batch=None)
    assert all(r.status == "accepted" for r in results), [r for r in results if r.status != "accepted"]
    return results


def person(n: int, **traits: Any) -> dict[str, Any]:
    """The identify event of demo person n: unionid u-n, phone 1380013xxxx, a name."""
    return event("identify", id=f"person-{n}", identities=[
        {"type": "wechat_unionid", "value": f"u-{n}"},
        {"type": "phone", "value": f"1380013{n:04d}", "verified": True}],
        traits={"name": f"客户{n:03d}", "city": "上海", "acquisition_channel": "douyin", **traits})


@dataclass(frozen=True)
class LinkedPair:
    """Two profiles sharing an unverified phone: one pending identity link between them."""

    first_id: int
    second_id: int


def seed_linked_pair(engine: Engine, workspace: WorkspaceContext) -> LinkedPair:
    phone = {"type": "phone", "value": "13900139000", "verified": False}
    results = ingest(engine, workspace, [
        event("contact_added", id="pair-1", identities=[{"type": "wechat_unionid", "value": "pair-a"}, phone],
              traits={"name": "林小雨", "city": "杭州"}, properties={"staff_id": "s-01", "channel": "douyin"}),
        event("identify", id="pair-2", at="2026-11-02T10:00:00+08:00",
              identities=[{"type": "wechat_unionid", "value": "pair-b"}, phone], traits={"name": "小雨"}),
        order("PAIR-O-1", unionid="pair-b", at="2026-11-03T10:00:00+08:00"),
    ])
    first, second = results[0].customer_id, results[1].customer_id
    assert first is not None and second is not None and first != second
    return LinkedPair(first, second)


# -- the real server and a browser ----------------------------------------------------------------

@pytest.fixture
def live_server(app: Any) -> Iterator[str]:
    """The app served by uvicorn in a thread, on a port bound before it starts (no race for it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    started = threading.Event()
    while not started.wait(0.02):
        if server.started:
            started.set()
        elif not thread.is_alive():
            pytest.fail("the console server did not start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join()
    sock.close()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run scripts/system-deps.sh (browser tests never download one)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any, live_server: str) -> Iterator[Any]:
    context = chromium.new_context(base_url=live_server, viewport={"width": 1440, "height": 900}, locale="zh-CN")
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    context.close()


def sign_in(page: Any, email: str, password: str) -> None:
    page.goto("/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
