"""Every query of the coupon tables, scoped by workspace in one place."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from siyu.coupons.models import Coupon, CouponRedemption, CouponTemplate
from siyu.db.bulk import Bulk
from siyu.db.keyed import restrict
from siyu.kit.pagination import decode_cursor, encode_cursor

CHUNK = 5000


def insert_for(session: Session) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def chunked(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# -- templates ---------------------------------------------------------------------------------

def template(session: Session, workspace_id: int, template_id: int, *, lock: bool = False) -> CouponTemplate | None:
    stmt = select(CouponTemplate).where(CouponTemplate.id == template_id, CouponTemplate.workspace_id == workspace_id)
    if lock:
        # The stock counter and per-customer counts are decided under this lock: issuers of one
        # template queue here, issuers of different templates do not meet.
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.scalar(stmt)


def templates(session: Session, workspace_id: int, status: str | None = None) -> list[CouponTemplate]:
    stmt = select(CouponTemplate).where(CouponTemplate.workspace_id == workspace_id)
    if status:
        stmt = stmt.where(CouponTemplate.status == status)
    return list(session.scalars(stmt.order_by(CouponTemplate.id.desc())))


def add_issued(session: Session, template_id: int, count: int) -> None:
    session.execute(update(CouponTemplate).where(CouponTemplate.id == template_id)
                    .values(issued_count=CouponTemplate.issued_count + count))


@dataclass(frozen=True)
class StatsRow:
    issued: int = 0
    redeemed: int = 0
    expired: int = 0
    gmv_fen: int = 0
    discount_fen: int = 0


def stats(session: Session, workspace_id: int, template_ids: Sequence[int]) -> dict[int, StatsRow]:
    """Issued, redeemed (not restored), expired, and the GMV and discount of redeemed orders."""
    if not template_ids:
        return {}
    expired = {int(tid): int(n) for tid, n in session.execute(
        select(Coupon.template_id, func.count())
        .where(Coupon.workspace_id == workspace_id, Coupon.template_id.in_(template_ids), Coupon.state == "expired")
        .group_by(Coupon.template_id))}
    issued = {int(tid): int(n) for tid, n in session.execute(
        select(CouponTemplate.id, CouponTemplate.issued_count).where(CouponTemplate.id.in_(template_ids)))}
    money = {tid: (int(n), int(gmv or 0), int(discount or 0)) for tid, n, gmv, discount in session.execute(
        select(CouponRedemption.template_id, func.count(), func.sum(CouponRedemption.order_amount_fen),
               func.sum(CouponRedemption.discount_fen))
        .where(CouponRedemption.workspace_id == workspace_id, CouponRedemption.template_id.in_(template_ids),
               CouponRedemption.restored_at.is_(None))
        .group_by(CouponRedemption.template_id))}
    return {tid: StatsRow(issued=int(issued.get(tid, 0)), redeemed=money.get(tid, (0, 0, 0))[0],
                          expired=expired.get(tid, 0), gmv_fen=money.get(tid, (0, 0, 0))[1],
                          discount_fen=money.get(tid, (0, 0, 0))[2])
            for tid in template_ids}


# -- coupons -----------------------------------------------------------------------------------

def coupon_by_code(session: Session, workspace_id: int, code: str) -> Coupon | None:
    return session.scalar(select(Coupon).where(Coupon.code == code, Coupon.workspace_id == workspace_id)
                          .execution_options(populate_existing=True))


class Redeemable(NamedTuple):
    """A coupon and the terms of its template, read in one query as a plain row (the checkout path)."""

    id: int
    code: str
    customer_id: int
    state: str
    valid_from: datetime
    valid_until: datetime
    template_id: int
    kind: str
    amount_off_fen: int | None
    threshold_fen: int
    percent_off: int | None
    max_discount_fen: int | None
    categories: list[str]
    skus: list[str]
    gift_name: str | None


# The checkout path's statements are built once (Core, over the tables): a redemption is three of them.
COUPONS = cast(Table, Coupon.__table__)
TEMPLATES = cast(Table, CouponTemplate.__table__)
REDEMPTIONS = cast(Table, CouponRedemption.__table__)
_REDEEMABLE = (
    select(COUPONS.c.id, COUPONS.c.code, COUPONS.c.customer_id, COUPONS.c.state, COUPONS.c.valid_from,
           COUPONS.c.valid_until, TEMPLATES.c.id, TEMPLATES.c.kind, TEMPLATES.c.amount_off_fen,
           TEMPLATES.c.threshold_fen, TEMPLATES.c.percent_off, TEMPLATES.c.max_discount_fen, TEMPLATES.c.categories,
           TEMPLATES.c.skus, TEMPLATES.c.gift_name)
    .join(TEMPLATES, TEMPLATES.c.id == COUPONS.c.template_id)
    .where(COUPONS.c.code == bindparam("code"), COUPONS.c.workspace_id == bindparam("ws")))
_CLAIM = (update(COUPONS).where(COUPONS.c.id == bindparam("coupon_id"), COUPONS.c.state == "issued",
                                COUPONS.c.valid_until > bindparam("at"))
          .values(state="redeemed", redeemed_at=bindparam("at")))
_RECORD = {name: (dialect_insert(REDEMPTIONS).on_conflict_do_nothing(index_elements=["workspace_id", "coupon_id",
                                                                                    "order_id"])
                  .returning(REDEMPTIONS.c.id))
           for name, dialect_insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))}
# The claim and the redemption row in one statement (PostgreSQL: data-modifying CTEs). The claim is the
# same conditional UPDATE as `_CLAIM`: concurrent statements on one coupon queue on its row lock, and
# the losers re-check `state = 'issued'` once the winner commits, so exactly one wins.
_CLAIM_AND_RECORD = text(
    "WITH claimed AS (UPDATE coupons SET state = 'redeemed', redeemed_at = :redeemed_at "
    "WHERE id = :coupon_id AND state = 'issued' AND valid_until > :redeemed_at RETURNING id), "
    "recorded AS (INSERT INTO coupon_redemptions (workspace_id, coupon_id, template_id, customer_id, order_id, "
    "order_amount_fen, discount_fen, source, redeemed_at) SELECT :workspace_id, id, :template_id, :customer_id, "
    ":order_id, :order_amount_fen, :discount_fen, :source, :redeemed_at FROM claimed "
    "ON CONFLICT (workspace_id, coupon_id, order_id) DO NOTHING RETURNING id) "
    "SELECT (SELECT count(*) FROM claimed), (SELECT count(*) FROM recorded)"
).bindparams(bindparam("redeemed_at", type_=COUPONS.c.redeemed_at.type))


def redeemable(session: Session, workspace_id: int, code: str) -> Redeemable | None:
    row = session.execute(_REDEEMABLE, {"code": code, "ws": workspace_id}).first()
    return Redeemable._make(row) if row is not None else None


def redemption_of(session: Session, coupon_id: int, order_id: str) -> CouponRedemption | None:
    return session.scalar(select(CouponRedemption).where(CouponRedemption.coupon_id == coupon_id,
                                                         CouponRedemption.order_id == order_id))


def insert_redemption(session: Session, values: dict[str, Any]) -> bool:
    """False when this coupon was already used on this order (and since given back by a refund)."""
    return session.execute(_RECORD[session.get_bind().dialect.name], values).first() is not None


def claim_and_record(session: Session, values: dict[str, Any]) -> tuple[bool, bool]:
    """`claim_for_redemption` then `insert_redemption` of `values` (which hold the coupon's id as
    `coupon_id` and the time as `redeemed_at`): (claimed, recorded). On PostgreSQL one statement, a
    single round trip (the checkout path's latency is mostly round trips)."""
    if session.get_bind().dialect.name != "postgresql":
        if not claim_for_redemption(session, values["coupon_id"], values["redeemed_at"]):
            return False, False
        return True, insert_redemption(session, values)
    claimed, recorded = session.execute(_CLAIM_AND_RECORD, values).one()
    return bool(claimed), bool(recorded)


def coupons_by_cause(session: Session, workspace_id: int, keys: Sequence[str]) -> dict[str, Coupon]:
    """Coupons already issued for these causes (the keys are looked up first: usually none exist)."""
    existing = sorted(existing_cause_keys(session, workspace_id, keys))
    found: dict[str, Coupon] = {}
    for part in chunked(existing):
        found.update({c.cause_key: c for c in session.scalars(
            restrict(session, select(Coupon).where(Coupon.workspace_id == workspace_id), Coupon.cause_key, part))})
    return found


def existing_cause_keys(session: Session, workspace_id: int, keys: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for part in chunked(sorted(set(keys))):
        found.update(session.scalars(restrict(session, select(COUPONS.c.cause_key)
                                              .where(COUPONS.c.workspace_id == workspace_id),
                                              COUPONS.c.cause_key, part)))
    return found


def held_counts(session: Session, template_id: int, customer_ids: Sequence[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for part in chunked(sorted(set(customer_ids))):
        counts.update({int(cid): int(n) for cid, n in session.execute(
            select(Coupon.customer_id, func.count()).where(Coupon.template_id == template_id,
                                                           Coupon.customer_id.in_(part))
            .group_by(Coupon.customer_id))})
    return counts


COUPON_COLUMNS = ("workspace_id", "template_id", "customer_id", "code", "state", "cause_key", "issued_at",
                  "valid_from", "valid_until")


def insert_coupons(session: Session, rows: list[dict[str, Any]]) -> None:
    """Many coupons at once (COPY on PostgreSQL): a month's benefits issue one per member."""
    bulk = Bulk(session)
    ts = functools.lru_cache(maxsize=1024)(bulk.ts)  # a batch shares its few instants
    times = {"issued_at", "valid_from", "valid_until"}
    bulk.copy("coupons", COUPON_COLUMNS,
              [tuple(ts(r[c]) if c in times else r[c] for c in COUPON_COLUMNS) for r in rows])


def claim_for_redemption(session: Session, coupon_id: int, at: datetime) -> bool:
    """issued → redeemed, atomically: exactly one of any number of concurrent callers gets True."""
    result = session.execute(_CLAIM, {"coupon_id": coupon_id, "at": at})
    return bool(getattr(result, "rowcount", 0))


def active_redemption(session: Session, coupon_id: int) -> CouponRedemption | None:
    return session.scalar(select(CouponRedemption).where(CouponRedemption.coupon_id == coupon_id,
                                                         CouponRedemption.restored_at.is_(None))
                          .order_by(CouponRedemption.id.desc()).limit(1))


def redemptions_of_orders(session: Session, workspace_id: int, order_ids: Sequence[str]) -> list[CouponRedemption]:
    return list(session.scalars(select(CouponRedemption).where(
        CouponRedemption.workspace_id == workspace_id, CouponRedemption.order_id.in_(sorted(set(order_ids))),
        CouponRedemption.restored_at.is_(None))))


def list_coupons(session: Session, workspace_id: int, *, customer_id: int | None = None, state: str | None = None,
                 template_id: int | None = None, cursor: str | None = None,
                 limit: int = 50) -> tuple[list[Coupon], str | None]:
    stmt = select(Coupon).where(Coupon.workspace_id == workspace_id)
    if customer_id is not None:
        stmt = stmt.where(Coupon.customer_id == customer_id)
    if state:
        stmt = stmt.where(Coupon.state == state)
    if template_id is not None:
        stmt = stmt.where(Coupon.template_id == template_id)
    if cursor:
        (last_id,) = decode_cursor(cursor)
        stmt = stmt.where(Coupon.id < int(last_id))
    rows = list(session.scalars(stmt.order_by(Coupon.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def count_usable(session: Session, workspace_id: int, customer_id: int, at: datetime) -> int:
    return int(session.scalar(select(func.count()).select_from(Coupon).where(
        Coupon.workspace_id == workspace_id, Coupon.customer_id == customer_id, Coupon.state == "issued",
        Coupon.valid_until > at)) or 0)


def due_for_expiry(session: Session, at: datetime, limit: int) -> list[int]:
    return list(session.scalars(select(Coupon.id).where(Coupon.state == "issued", Coupon.valid_until <= at)
                                .order_by(Coupon.valid_until, Coupon.id).limit(limit)))


def mark_expired(session: Session, coupon_ids: Sequence[int], at: datetime) -> int:
    result = session.execute(update(Coupon).where(Coupon.id.in_(coupon_ids), Coupon.state == "issued",
                                                  Coupon.valid_until <= at)
                             .values(state="expired", ended_at=at).execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def move_customer(session: Session, workspace_id: int, from_id: int, to_id: int) -> int:
    moved = session.execute(update(Coupon).where(Coupon.workspace_id == workspace_id, Coupon.customer_id == from_id)
                            .values(customer_id=to_id).execution_options(synchronize_session=False))
    session.execute(update(CouponRedemption).where(CouponRedemption.workspace_id == workspace_id,
                                                   CouponRedemption.customer_id == from_id)
                    .values(customer_id=to_id).execution_options(synchronize_session=False))
    return int(getattr(moved, "rowcount", 0) or 0)


def give_back(session: Session, coupon_id: int) -> bool:
    """redeemed → issued (a refund restored it), atomically."""
    result = session.execute(update(Coupon).where(Coupon.id == coupon_id, Coupon.state == "redeemed")
                             .values(state="issued", redeemed_at=None).execution_options(synchronize_session=False))
    return bool(getattr(result, "rowcount", 0))


def end_issued(session: Session, coupon_id: int, state: str, at: datetime) -> bool:
    result = session.execute(update(Coupon).where(Coupon.id == coupon_id, Coupon.state == "issued")
                             .values(state=state, ended_at=at).execution_options(synchronize_session=False))
    return bool(getattr(result, "rowcount", 0))
