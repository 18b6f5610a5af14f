"""The `siyu` command line: real commands against the test database, clear errors, exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, distinct, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from siyu.cli import app
from siyu.config import get_settings
from siyu.customers.models import Customer
from siyu.workspaces.models import ApiKey, User
from tests.factories import event

runner = CliRunner()


@pytest.fixture
def cli(clean_engine: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SIYU_DATABASE_URL", database_url)
    monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def run(*args: str, input: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), input=input)
    return result.exit_code, result.output


def test_workspace_user_and_key_commands(cli: None, db: Session) -> None:
    code, out = run("workspace", "create", "cli-brand", "--name", "CLI 品牌")
    assert code == 0 and "cli-brand" in out
    code, out = run("user", "create", "ops@cli.test", "-w", "cli-brand", "--password", "long-enough-pw",
                    "--role", "owner")
    assert code == 0
    code, out = run("apikey", "create", "-w", "cli-brand", "--name", "erp")
    assert code == 0 and "sk_" in out
    assert db.scalar(select(func.count()).select_from(User)) == 1
    assert db.scalar(select(func.count()).select_from(ApiKey)) == 1


def test_expected_errors_are_one_line_and_exit_1(cli: None) -> None:
    code, out = run("workspace", "create", "Bad Slug")
    assert code == 1 and "error:" in out and "Traceback" not in out
    code, out = run("apikey", "create", "-w", "nope")
    assert code == 1 and "no workspace" in out
    code, out = run("import", "events", "/nonexistent.jsonl", "-w", "nope")
    assert code == 1 and "Traceback" not in out


def test_import_prints_a_summary_and_writes_rejects(cli: None, db: Session, tmp_path: Path) -> None:
    run("workspace", "create", "imp")
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in [event(id="1"), event(id="2", identities=[])]) + "\n")
    code, out = run("import", "events", str(path), "-w", "imp")
    assert code == 0
    assert json.loads(out.strip().splitlines()[-1]) == {"accepted": 1, "duplicate": 0, "rejected": 1}
    assert (tmp_path / "e.rejected.jsonl").exists()
    code, out = run("import", "events", str(path), "-w", "imp")
    assert json.loads(out.strip().splitlines()[-1]) == {"accepted": 0, "duplicate": 1, "rejected": 1}
    assert db.scalar(select(func.count()).select_from(Customer)) == 1


def test_demo_builds_the_brand_with_its_merges(cli: None, db: Session) -> None:
    from siyu.customers.models import CustomerMerge, Identity
    from siyu.loyalty.models import Member, Tier

    code, out = run("demo", "--customers", "120", "--workspace", "demo-t")
    assert code == 0, out
    assert "owner@demo-t.siyu.local" in out and "sk_" in out
    live = db.scalar(select(func.count()).select_from(Customer).where(Customer.merged_into_id.is_(None)))
    assert live == 120
    assert db.scalar(select(func.count()).select_from(CustomerMerge)) == 2
    members = db.scalar(select(func.count()).select_from(Member))
    registered = db.scalar(select(func.count(distinct(Identity.customer_id))).where(Identity.type == "member_no"))
    assert members == registered and members and f"{members} members enrolled" in out
    assert [t.name for t in db.scalars(select(Tier).order_by(Tier.rank))] == ["普卡会员", "银卡会员", "金卡会员",
                                                                             "钻石会员"]
    code, out = run("demo", "--customers", "120", "--workspace", "demo-t")
    assert code == 0 and "(0 new)" in out


def test_jobs_list_and_customers_show(cli: None) -> None:
    run("workspace", "create", "jobs-ws")
    code, out = run("jobs", "list")
    assert code == 0
    code, out = run("customers", "show", "424242", "-w", "jobs-ws")
    assert code == 1 and "no customer" in out
