"""`siyu tags` and `siyu segments` against the test database: output, files, exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from siyu.cli import app
from siyu.config import get_settings
from siyu.segments.models import Segment
from siyu.workspaces.service import WorkspaceContext
from tests.factories import order
from tests.segments.helpers import ids_by_unionid, ingest

runner = CliRunner()
BUYERS = {"kind": "order", "measure": "count", "op": "gte", "value": 1}


@pytest.fixture
def cli(clean_engine: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SIYU_DATABASE_URL", database_url)
    monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "-w", "acme"])
    return result.exit_code, result.output


def rule_file(tmp_path: Path, rule: object) -> str:
    path = tmp_path / "rule.json"
    path.write_text(json.dumps(rule, ensure_ascii=False), encoding="utf-8")
    return str(path)


def test_validate_prints_each_failing_path_and_exits_1(cli: None, workspace: WorkspaceContext,
                                                       tmp_path: Path) -> None:
    code, out = run("segments", "validate", rule_file(tmp_path, {"all": [BUYERS, {"kind": "order",
                                                                                  "measure": "count", "window": 0,
                                                                                  "op": "gte", "value": 1}]}))
    assert code == 1 and "all[1].window: must be positive" in out and "Traceback" not in out
    code, out = run("segments", "validate", rule_file(tmp_path, BUYERS))
    assert code == 0 and "valid" in out


def test_create_refresh_members_and_export(cli: None, db: Session, workspace: WorkspaceContext,
                                           tmp_path: Path) -> None:
    ingest(db, workspace, order("O-1", unionid="buyer"))
    code, out = run("segments", "preview", rule_file(tmp_path, BUYERS))
    assert code == 0 and "1 customers" in out
    code, out = run("segments", "create", "买过", "--rule", rule_file(tmp_path, BUYERS))
    assert code == 0 and "fresh 买过: 1 members" in out
    segment_id = db.scalar(select(Segment.id).where(Segment.name == "买过"))
    code, out = run("segments", "refresh", str(segment_id))
    assert code == 0 and "1 members" in out
    target = tmp_path / "out.csv"
    code, out = run("segments", "export", str(segment_id), "--identities", "wechat_unionid", "--out", str(target))
    buyer = ids_by_unionid(db, workspace)["buyer"]
    assert code == 0 and target.read_text(encoding="utf-8").splitlines() == [
        "customer_id,name,wechat_unionid", f"{buyer},,buyer"]
    code, out = run("segments", "list")
    assert code == 0 and "买过" in out


def test_tags_apply_from_a_csv_and_show_history(cli: None, db: Session, workspace: WorkspaceContext,
                                                tmp_path: Path) -> None:
    ingest(db, workspace, order("O-1", unionid="buyer"))
    code, out = run("tags", "create", "VIP")
    assert code == 0 and "manual tag VIP created" in out
    csv_path = tmp_path / "vip.csv"
    csv_path.write_text("wechat_unionid\nbuyer\nstranger\n", encoding="utf-8")
    code, out = run("tags", "apply", "1", "--csv", str(csv_path))
    assert code == 0 and "tag added to 1 customers (0 unchanged, 1 unknown)" in out
    code, out = run("tags", "history", str(ids_by_unionid(db, workspace)["buyer"]))
    assert code == 0 and "VIP" in out and "added" in out
    code, out = run("segments", "create", "VIP 客", "--rule", rule_file(tmp_path, {"kind": "tag", "op": "has_any",
                                                                                  "tags": [1]}))
    assert code == 0
    code, out = run("tags", "delete", "1")
    assert code == 1 and "used by segment VIP 客" in out


def test_layering_commands_score_and_stage(cli: None, db: Session, workspace: WorkspaceContext) -> None:
    ingest(db, workspace, order("O-1", unionid="buyer"), order("O-2", unionid="other", total_fen=9_900,
                                                              items=[{"sku": "M", "category": "美妆", "quantity": 1,
                                                                      "unit_price_fen": 9_900}]))
    code, out = run("segments", "rfm")
    assert code == 0 and "not scored yet" in out
    code, out = run("segments", "rfm", "--score")
    assert code == 0 and "2 customers" in out and "重要价值" in out
    assert db.scalar(select(Segment.size).where(Segment.builtin_key == "rfm:important_value")) == 1
    code, out = run("segments", "lifecycle", "--evaluate")
    assert code == 0 and "新客 (new): 2" in out
