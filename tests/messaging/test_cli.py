"""`siyu messaging ...` against the test database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from siyu.cli import app
from siyu.config import get_settings
from siyu.workspaces.service import WorkspaceContext
from tests.messaging.conftest import make_customer, no_policy_limits

runner = CliRunner()


@pytest.fixture
def cli(clean_engine: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SIYU_DATABASE_URL", database_url)
    monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["messaging", *args, "--workspace", "acme"])
    return result.exit_code, result.output


def test_a_broadcast_from_the_command_line(cli: None, db: Session, workspace: WorkspaceContext) -> None:
    no_policy_limits(db, workspace)
    customers = [make_customer(db, workspace) for _ in range(3)]
    code, out = run("templates", "create", "欢迎", "--channel", "sandbox", "--body", "{{ customer.name }}，欢迎")
    assert code == 0 and "variables: customer, customer.name" in out
    code, out = run("broadcasts", "create", "欢迎礼", "--channel", "sandbox", "--template", "1",
                    "--audience", f'{{"kind": "list", "customer_ids": {customers}}}')
    assert code == 0 and ": 3 customers" in out
    code, out = run("broadcasts", "preview", "1")
    assert code == 0 and "audience 3: send 3, defer 0, suppress 0" in out
    assert run("broadcasts", "start", "1") == (0, "broadcast 1 scheduled\n")
    assert runner.invoke(app, ["jobs", "run"]).exit_code == 0  # the fill
    assert runner.invoke(app, ["messaging", "dispatch"]).exit_code == 0
    code, out = run("broadcasts", "show", "1")
    assert code == 0 and "completed" in out and "sent 3" in out


def test_expected_errors_are_one_red_line(cli: None, db: Session, workspace: WorkspaceContext) -> None:
    code, out = run("templates", "create", "坏", "--channel", "sandbox", "--body", "{{ customer.nickname }}")
    assert code == 1 and "unknown variable customer.nickname" in out and "Traceback" not in out
    code, out = run("policy", "set", '{"quiet_hours": {"start": "25:00"}}')
    assert code == 1 and "policy.quiet_hours.start" in out


def test_send_and_show_a_message(cli: None, db: Session, workspace: WorkspaceContext) -> None:
    customer = make_customer(db, workspace)
    code, out = run("send", str(customer), "--channel", "sandbox", "--key", "cli-1", "--text", "你好",
                    "--purpose", "service")
    assert (code, out) == (0, "message 1 queued\n")
    assert run("send", str(customer), "--channel", "sandbox", "--key", "cli-1", "--text", "你好",
               "--purpose", "service") == (0, "message 1 queued — existing\n")
    assert runner.invoke(app, ["messaging", "dispatch"]).exit_code == 0
    code, out = run("messages", "show", "1")
    assert code == 0 and "delivered" in out and "attempt 1" in out
