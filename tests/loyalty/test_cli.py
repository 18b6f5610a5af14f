"""`siyu loyalty` and `siyu coupons` against the test database: set-up, members, points, coupons."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from siyu.cli import app
from siyu.config import get_settings
from siyu.workspaces.service import WorkspaceContext
from tests.loyalty.conftest import customer

runner = CliRunner()


@pytest.fixture
def cli(clean_engine: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SIYU_DATABASE_URL", database_url)
    monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def write(tmp_path: Path, name: str, data: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return str(path)


def test_a_programme_members_points_and_coupons_from_the_command_line(
        cli: None, db: Session, workspace: WorkspaceContext, tmp_path: Path) -> None:
    cid = customer(db, workspace, "u-1")
    assert run("loyalty", "configure", write(tmp_path, "p.json", {"name": "会员"}), "-w", "acme")[0] == 0
    tiers = {"tiers": [{"code": "member", "name": "普通会员", "threshold": 0},
                       {"code": "gold", "name": "金卡", "threshold": 500_000, "validity_months": 12}]}
    assert run("loyalty", "set-tiers", write(tmp_path, "t.json", tiers), "-w", "acme")[0] == 0
    code, out = run("loyalty", "enrol", str(cid), "--channel", "store", "--text-version", "v1", "-w", "acme")
    assert code == 0 and "M00000001" in out
    code, out = run("loyalty", "adjust", str(cid), "120", "--reason", "welcome", "--key", "w-1", "-w", "acme")
    assert code == 0 and "balance 120" in out
    code, out = run("loyalty", "redeem", str(cid), "500", "--reason", "kettle", "--key", "r-1", "-w", "acme")
    assert code == 1 and "120 points available" in out and "Traceback" not in out
    code, out = run("loyalty", "member", str(cid), "-w", "acme")
    assert code == 0 and "120 available" in out and "500000 to 金卡" in out
    code, out = run("loyalty", "deduct", str(cid), "20", "--order-id", "O-9", "--amount", "10000", "-w", "acme")
    assert code == 0 and "20 fen off order O-9; balance 100" in out
    code, out = run("loyalty", "price", str(cid), "--amount", "10000", "-w", "acme")
    assert code == 0 and "= 10000 fen (0 fen off)" in out and "(100 of 100 points)" in " ".join(out.split())
    code, out = run("loyalty", "price", str(cid), "--amount", "-5", "-w", "acme")
    assert code != 0 and "order_amount_fen" in out
    code, out = run("loyalty", "staff", str(cid), "staff-7", "-w", "acme")
    assert code == 1 and "no dedicated service" in out
    template = {"name": "¥10", "kind": "amount_off", "amount_off_fen": 1000, "valid_days": 7}
    code, out = run("coupons", "create", write(tmp_path, "c.json", template), "-w", "acme")
    assert code == 0
    code, out = run("coupons", "issue", "1", str(cid), "--key", "k-1", "-w", "acme")
    assert code == 0
    coupon = out.split()[1]
    code, out = run("coupons", "redeem", coupon, "--order-id", "O-1", "--amount", "5000", "-w", "acme")
    assert code == 0 and "¥10.00 off" in out
    code, out = run("coupons", "redeem", coupon, "--order-id", "O-2", "--amount", "5000", "-w", "acme")
    assert code == 1 and "already used" in out
    code, out = run("coupons", "templates", "-w", "acme")
    assert code == 0 and "¥50.00" in out
    code, out = run("loyalty", "run-benefits", "--period", "2026-11", "-w", "acme")
    assert code == 0 and "2026-11: 0 members granted" in out
    assert run("loyalty", "tick")[0] == 0


def test_bad_files_get_one_line(cli: None, workspace: WorkspaceContext, tmp_path: Path) -> None:
    code, out = run("loyalty", "set-tiers", write(tmp_path, "t.json", {"tiers": [{"code": "A"}]}), "-w", "acme")
    assert code == 1 and "tiers.0.code" in out and "Traceback" not in out
    code, out = run("coupons", "create", write(tmp_path, "c.json", {"name": "x", "kind": "amount_off",
                                                                     "amount_off_fen": 9.5}), "-w", "acme")
    assert code == 1 and "amount_off_fen" in out


def test_a_programme_started_after_its_orders_replays_them(db: Session, workspace: WorkspaceContext, cli: None,
                                                           engine: Engine, tmp_path: Path) -> None:
    from siyu.loyalty.service import Consent, enrol_member
    from tests.factories import order
    from tests.loyalty.conftest import LADDER, ingest, run_jobs, setup_programme

    cid = customer(db, workspace, "u-1")
    ingest(db, workspace, *[order(f"O-{n}", at=f"2026-10-0{n}T10:00:00+08:00",
                                  items=[{"sku": "PRAM", "quantity": 1, "unit_price_fen": 60_000}])
                            for n in range(1, 4)])
    run_jobs(engine)  # no programme yet: nothing is earned
    setup_programme(db, workspace, LADDER)
    enrol_member(db, workspace, cid, Consent("store", "v1"), actor="test")
    db.commit()
    code, out = run("loyalty", "replay", "--batch", "2", "-w", "acme")
    # 600 + 600 as 普通会员; the second order reaches 银卡 (¥1,000), so the third earns 1.5×: 900
    assert code == 0 and "3 events applied; 2100 points earned, 0 reversed, 1 tier changes" in out, out
    code, out = run("loyalty", "member", str(cid), "-w", "acme")
    assert code == 0 and "银卡" in out and "2100 available" in out
    code, out = run("loyalty", "replay", "-w", "acme")
    assert code == 0 and "0 events applied" in out
    code, out = run("loyalty", "replay", "--batch", "0", "-w", "acme")
    assert code == 1 and "batch" in out and "Traceback" not in out
