"""Streaming imports: clear per-row errors, a rejects file, and re-runs that change nothing."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from siyu.customers.models import Customer
from siyu.events.importer import import_file
from siyu.events.models import Event, Order, OrderItem
from siyu.kit.errors import ValidationFailed
from tests.factories import event, order


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    return path


def _count(db: Session, model: type) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


def test_jsonl_import_with_a_broken_line_in_the_middle(clean_engine: Engine, db: Session, workspace,
                                                      tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "events.jsonl", [event(id="a"), "{oops", order("O-1", id="b"),
                                                    event(id="c", at="2026-11-01 10:00")])
    summary = import_file(clean_engine, workspace, path, "events", batch_size=2)
    assert (summary.accepted, summary.duplicate, summary.rejected) == (2, 0, 2)
    assert _count(db, Event) == 2 and _count(db, Order) == 1
    assert summary.rejected_file is not None
    rejected = [json.loads(line) for line in summary.rejected_file.read_text().splitlines()]
    assert [r["error_field"] for r in rejected] == [None, "occurred_at"]
    assert "not valid JSON" in rejected[0]["error_reason"]


def test_reimport_changes_nothing(clean_engine: Engine, db: Session, workspace, tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "events.jsonl", [event(id=f"e{i}", identities={"wechat_unionid": f"u{i % 4}"})
                                                    for i in range(20)])
    first = import_file(clean_engine, workspace, path, "events")
    second = import_file(clean_engine, workspace, path, "events")
    assert (first.accepted, second.accepted, second.duplicate) == (20, 0, 20)
    assert _count(db, Event) == 20 and _count(db, Customer) == 4
    assert not (tmp_path / "events.rejected.jsonl").exists()


def test_csv_events_with_identity_and_property_columns(clean_engine: Engine, db: Session, workspace,
                                                       tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "type", "occurred_at", "phone", "wechat_unionid", "properties.page", "traits.city"])
        writer.writerow(["v1", "page_view", "2026-11-01T10:00:00+08:00", "13812345678", "u-9", "/home", "杭州"])
        writer.writerow(["v2", "page_view", "2026-11-01T10:00:00+08:00", "1381234", "u-8", "/home", ""])
        writer.writerow(["v3", "page_view", "2026-11-01T10:00:00+08:00"])
    summary = import_file(clean_engine, workspace, path, "events")
    assert (summary.accepted, summary.rejected) == (1, 2)
    customer = db.scalar(select(Customer))
    assert customer is not None and (customer.city, customer.phone) == ("杭州", "+8613812345678")
    assert summary.rejected_file is not None
    rows = list(csv.reader(summary.rejected_file.open()))
    assert rows[0] == ["error_field", "error_reason", "row"]
    assert [r[0] for r in rows[1:]] == ["identities[0].value", ""]


def test_orders_csv_groups_item_rows_by_order(clean_engine: Engine, db: Session, workspace, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,paid_at,wechat_unionid,channel,sku,name,category,quantity,unit_price_fen\n"
        "T-1,2026-10-01T10:00:00+08:00,u-1,tmall,MILK,奶粉,母婴/奶粉,2,29800\n"
        "T-1,2026-10-01T10:00:00+08:00,u-1,tmall,MASK,面膜,美妆/面膜,1,9900\n"
        "T-2,2026-10-05T10:00:00+08:00,u-1,jd,MASK,面膜,美妆/面膜,1,-5\n")
    summary = import_file(clean_engine, workspace, path, "orders")
    assert (summary.accepted, summary.rejected) == (1, 1)
    assert _count(db, Order) == 1 and _count(db, OrderItem) == 2
    assert db.scalar(select(Order.total_fen)) == 2 * 29800 + 9900
    again = import_file(clean_engine, workspace, path, "orders")
    assert (again.accepted, again.duplicate, again.rejected) == (0, 1, 1)


def test_customers_import_creates_profiles_and_is_idempotent(clean_engine: Engine, db: Session, workspace,
                                                           tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("name,phone,member_no,city,gender,attributes.baby_age_months\n"
                    "王芳,138 1234 5678,M-1,上海,female,8\n"
                    "李雷,13912345678,M-2,北京,male,\n")
    first = import_file(clean_engine, workspace, path, "customers")
    second = import_file(clean_engine, workspace, path, "customers")
    assert (first.accepted, second.duplicate) == (2, 2)
    fang = db.scalar(select(Customer).where(Customer.name == "王芳"))
    assert fang is not None and fang.attributes == {"baby_age_months": 8} and fang.city == "上海"
    assert _count(db, Customer) == 2


def test_unknown_format_and_missing_file_are_clear_errors(clean_engine: Engine, workspace, tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="no such file"):
        import_file(clean_engine, workspace, tmp_path / "missing.csv", "events")
    other = tmp_path / "events.xlsx"
    other.write_text("x")
    with pytest.raises(ValidationFailed, match=r"\.csv or \.jsonl"):
        import_file(clean_engine, workspace, other, "events")


def _rollup_rows(db: Session) -> list[tuple]:
    from siyu.events.models import CustomerCategoryStat, CustomerRollup

    db.expire_all()
    rollups = db.execute(select(CustomerRollup.customer_id, CustomerRollup.events_count, CustomerRollup.orders_count,
                                CustomerRollup.total_spend_fen, CustomerRollup.refunded_fen,
                                CustomerRollup.first_order_at, CustomerRollup.last_order_at,
                                CustomerRollup.last_interaction_at).order_by(CustomerRollup.customer_id)).all()
    stats = db.execute(select(CustomerCategoryStat.customer_id, CustomerCategoryStat.category,
                              CustomerCategoryStat.orders_count, CustomerCategoryStat.spend_fen)
                       .order_by(CustomerCategoryStat.customer_id, CustomerCategoryStat.category)).all()
    return [tuple(r) for r in rollups] + [tuple(s) for s in stats]


def test_batches_stored_in_one_transaction_keep_rollups_equal_to_the_records(
        clean_engine: Engine, db: Session, workspace, tmp_path: Path) -> None:
    """Several batches share a transaction and their rollups are added once at its end; merges and
    refunds in a later batch of the same transaction still leave rollups equal to a rebuild."""
    from siyu.db.session import transaction
    from siyu.events.rollups import recompute_rollups

    def person(n: int, *extra: dict) -> list[dict]:
        return [{"type": "wechat_unionid", "value": f"u-{n}"}, *extra]

    rows = []
    for n in range(12):
        rows.append(order(f"O-{n}", unionid=f"u-{n % 4}", id=f"o-{n}", at=f"2026-10-{n + 1:02d}T10:00:00+08:00"))
        rows.append(event(id=f"v-{n}", identities=person(n % 5), at=f"2026-09-{n + 1:02d}T10:00:00+08:00"))
    rows.append(event(id="join", identities=person(1, {"type": "member_no", "value": "M-1"})))
    rows.append(event(id="merge", identities=person(2, {"type": "member_no", "value": "M-1"})))  # u-1 and u-2 merge
    rows.append(event("order_refunded", id="refund", identities=person(3),
                      properties={"order_id": "O-3", "amount_fen": 10_000}))
    rows += [event(id=f"late-{n}", identities=person(n % 3)) for n in range(6)]
    path = _write_jsonl(tmp_path / "events.jsonl", rows)
    summary = import_file(clean_engine, workspace, path, "events", batch_size=3)
    assert (summary.accepted, summary.rejected) == (len(rows), 0)
    stored = _rollup_rows(db)
    with transaction(clean_engine) as session:
        ids = [cid for (cid,) in session.execute(select(Customer.id).where(Customer.merged_into_id.is_(None)))]
        recompute_rollups(session, workspace.id, ids)
    assert _rollup_rows(db) == stored
    assert sum(r[2] for r in stored if len(r) == 8) == 12  # every order counted once, the refunded one too


def _stored(db: Session) -> list[tuple]:
    customers = db.execute(select(Customer.name, Customer.birthday, Customer.attributes).order_by(Customer.id)).all()
    events = db.execute(select(Event.event_id, Event.type, Event.occurred_at, Event.properties)
                        .order_by(Event.event_id))
    items = db.execute(select(OrderItem.sku, OrderItem.quantity, OrderItem.paid_at).order_by(OrderItem.sku))
    return [tuple(customers), tuple(events), tuple(items)]


def test_reading_in_a_second_process_stores_what_reading_here_stores(
        clean_engine: Engine, db: Session, workspace, tmp_path: Path) -> None:
    """A large file is read in another process and its rows sent over as MessagePack: what is stored,
    and what is rejected, is the same either way."""
    rows = [event(id="a", traits={"name": "李娜", "birthday": "1990-05-01", "level": 3},
                  identities={"wechat_unionid": "u-a"}), "{oops",
            order("O-1", id="b", unionid="u-a", at="2026-11-01T12:30:00+08:00"),
            event(id="c", at="2026-11-01 10:00"), event(id="d", identities={"phone": "139 1234 5678"})]
    path = _write_jsonl(tmp_path / "events.jsonl", rows)
    here = import_file(clean_engine, workspace, path, "events", parallel=False)
    stored_here = _stored(db)
    _empty_workspace_data(clean_engine)
    there = import_file(clean_engine, workspace, path, "events", parallel=True)
    db.expire_all()
    assert (there.accepted, there.rejected, there.rows) == (here.accepted, here.rejected, here.rows) == (3, 2, 5)
    assert _stored(db) == stored_here
    assert stored_here[0][0][1] == date(1990, 5, 1)
    assert there.rejected_file is not None
    reasons = [json.loads(line) for line in there.rejected_file.read_text().splitlines()]
    assert sorted(str(r["error_field"]) for r in reasons) == ["None", "occurred_at"]


def test_an_attribute_number_beyond_64_bits_is_refused(clean_engine: Engine, db: Session, workspace,
                                                         tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("id,type,occurred_at,wechat_unionid,traits.score\n"
                    f"s1,page_view,2026-11-01T10:00:00+08:00,u-1,{10**30}\n"
                    "s2,page_view,2026-11-01T10:00:00+08:00,u-2,42\n")
    summary = import_file(clean_engine, workspace, path, "events")
    assert (summary.accepted, summary.rejected) == (1, 1)
    assert summary.errors_sample == ["traits.score: validation_failed: must be a JSON value, numbers within 64 bits"]


def _empty_workspace_data(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in ("order_items", "orders", "events", "customer_rollups", "customer_category_stats", "identities",
                      "jobs", "customers"):
            conn.execute(text(f"DELETE FROM {table}"))
