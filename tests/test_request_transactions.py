"""The request owns the transaction: a commit that fails is never answered with a success."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.events.models import Event
from tests.factories import event


def test_failed_commit_is_an_error_response_and_nothing_is_stored(app: Any, api: TestClient, db: Session,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    make_session = app.state.sessions

    def failing_sessions() -> Session:
        session = make_session()

        def commit() -> None:
            raise RuntimeError("disk full")

        monkeypatch.setattr(session, "commit", commit)
        return session

    monkeypatch.setattr(app.state, "sessions", failing_sessions)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers.update(api.headers)
        response = client.post("/api/v1/events", json=event())
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert db.scalar(select(func.count()).select_from(Event)) == 0
