"""RFM scoring of every customer who ordered within the window, all in SQL.

Measures: R = days since the last order, F = orders, M = spend (paid − refunded, fen); over the
last `window_days` (or all time, from the rollups). Fully refunded orders do not count.

Scores 1–5, by quintiles (the default): sort the customers from worst to best on a measure (R:
most days first; F and M: smallest first) and take the values at ranks ⌈k·n/5⌉, k = 1..4, as the
boundaries q1..q4. A customer's score is 1 + the number of boundaries they are strictly better
than. So equal values always get equal scores, a value equal to a boundary takes the lower
quintile, and a heavily tied measure (most customers with one order) leaves some scores unused.
With operator thresholds instead (four ascending values t1..t4): R = 1 + #(days ≤ t), F and M =
1 + #(value ≥ t).

The eight classes split each of R, F, M into high / low: high means at least as good as the
workspace average (days ≤ average days, orders ≥ average, spend ≥ average) by default, or as the
operator's thresholds. 重要价值 = R高 F高 M高, 重要发展 = R高 F低 M高, 重要保持 = R低 F高 M高,
重要挽留 = R低 F低 M高; the 一般 classes are the same with M低.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import ColumnElement, and_, case, delete, false, func, insert, literal, select, true, update
from sqlalchemy.orm import Session

from siyu.db.base import UTCDateTime, table_of
from siyu.events.models import CustomerRollup, Order
from siyu.kit import clock
from siyu.rules.compiler import customers
from siyu.rules.sql import epoch_seconds
from siyu.segments.errors import InvalidLayeringSettings
from siyu.segments.models import DYNAMIC, CustomerRfm, LayeringRun, Segment
from siyu.workspaces.service import WorkspaceContext, get_workspace, update_workspace_settings

CLASS_LABELS = {
    "important_value": "重要价值", "important_develop": "重要发展", "important_keep": "重要保持",
    "important_retain": "重要挽留", "general_value": "一般价值", "general_develop": "一般发展",
    "general_keep": "一般保持", "general_retain": "一般挽留",
}
# (R high, F high, M high) → class
CLASS_OF = {
    (True, True, True): "important_value", (True, False, True): "important_develop",
    (False, True, True): "important_keep", (False, False, True): "important_retain",
    (True, True, False): "general_value", (True, False, False): "general_develop",
    (False, True, False): "general_keep", (False, False, False): "general_retain",
}
DAY = 86400.0
EPSILON = 1e-6
rfm = table_of(CustomerRfm)
orders = table_of(Order)
rollups = table_of(CustomerRollup)


class RfmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_days: int | None = Field(365, ge=1, le=3650)  # None: all time
    score_by: Literal["quintiles", "thresholds"] = "quintiles"
    r_days: list[float] | None = None    # ascending day boundaries for R scores 5,4,3,2
    f_orders: list[float] | None = None  # ascending order-count boundaries for F scores 2..5
    m_fen: list[int] | None = None       # ascending spend boundaries for M scores 2..5
    split_by: Literal["average", "thresholds"] = "average"
    r_high_days: float | None = Field(None, gt=0)
    f_high_orders: float | None = Field(None, gt=0)
    m_high_fen: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> RfmSettings:
        if self.score_by == "thresholds":
            for name in ("r_days", "f_orders", "m_fen"):
                values = getattr(self, name)
                if values is None or len(values) != 4 or sorted(values) != values or len(set(values)) != 4:
                    raise ValueError(f"{name}: scoring by thresholds needs four ascending values")
        if self.split_by == "thresholds" and None in (self.r_high_days, self.f_high_orders, self.m_high_fen):
            raise ValueError("splitting by thresholds needs r_high_days, f_high_orders and m_high_fen")
        return self


def rfm_settings(ctx: WorkspaceContext) -> RfmSettings:
    return RfmSettings(**(ctx.settings.get("rfm") or {}))


def save_rfm_settings(session: Session, ctx: WorkspaceContext, values: dict[str, Any]) -> RfmSettings:
    try:
        settings = RfmSettings(**{**(ctx.settings.get("rfm") or {}), **values})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidLayeringSettings(str(first["msg"]).removeprefix("Value error, "), field=field) from exc
    update_workspace_settings(session, get_workspace(session, ctx.id), {"rfm": settings.model_dump()})
    return settings


def score_rfm(session: Session, ctx: WorkspaceContext, now: datetime | None = None,
              settings: RfmSettings | None = None) -> dict[str, Any]:
    """Score every customer of the workspace; returns (and keeps) the summary shown as the matrix."""
    now = now or clock.now()
    settings = settings or rfm_settings(ctx)
    started = time.perf_counter()
    dialect = session.get_bind().dialect.name
    session.execute(delete(rfm).where(rfm.c.workspace_id == ctx.id))
    session.execute(insert(rfm).from_select(
        ["customer_id", "workspace_id", "recency_days", "frequency", "monetary_fen", "r_score", "f_score",
         "m_score", "r_high", "f_high", "m_high", "rfm_class"],
        _measures(ctx.id, dialect, now, settings.window_days)))
    n = int(session.scalar(select(func.count()).select_from(rfm).where(rfm.c.workspace_id == ctx.id)) or 0)
    summary: dict[str, Any] = {"scored_at": now.isoformat(), "customers": n, "window_days": settings.window_days,
                               "score_by": settings.score_by, "split_by": settings.split_by}
    if n:
        averages = session.execute(select(func.avg(rfm.c.recency_days), func.avg(rfm.c.frequency),
                                          func.avg(rfm.c.monetary_fen)).where(rfm.c.workspace_id == ctx.id)).one()
        cuts = _score_cuts(session, ctx.id, n, settings)
        highs = ((settings.r_high_days, settings.f_high_orders, settings.m_high_fen)
                 if settings.split_by == "thresholds" else tuple(float(a) for a in averages))
        session.execute(update(rfm).where(rfm.c.workspace_id == ctx.id).values(**_scores(cuts, highs, settings)))
        summary.update(boundaries=cuts, averages=[float(a) for a in averages], high_cuts=list(highs),
                       **_matrix(session, ctx.id))
    summary["duration_ms"] = int((time.perf_counter() - started) * 1000)
    _record_run(session, ctx.id, now, summary)
    return summary


def _measures(workspace_id: int, dialect: str, now: datetime, window_days: int | None) -> Any:
    zero, no = literal(0), false()
    now_s = literal(now.timestamp())
    if window_days is None:
        days = (now_s - epoch_seconds(dialect, rollups.c.last_order_at)) / DAY
        return (select(rollups.c.customer_id, literal(workspace_id), days, rollups.c.orders_count,
                       rollups.c.total_spend_fen, zero, zero, zero, no, no, no, literal(""))
                .join(customers, customers.c.id == rollups.c.customer_id)
                .where(rollups.c.workspace_id == workspace_id, customers.c.workspace_id == workspace_id,
                       customers.c.merged_into_id.is_(None), rollups.c.orders_count > 0))
    since = literal(now - timedelta(days=window_days), UTCDateTime())
    days = (now_s - epoch_seconds(dialect, func.max(orders.c.paid_at))) / DAY
    return (select(orders.c.customer_id, literal(workspace_id), days, func.count(),
                   func.sum(orders.c.total_fen - orders.c.refunded_fen), zero, zero, zero, no, no, no, literal(""))
            .where(orders.c.workspace_id == workspace_id, orders.c.status != "refunded", orders.c.paid_at >= since,
                   orders.c.paid_at <= literal(now, UTCDateTime()))
            .group_by(orders.c.customer_id))


def _score_cuts(session: Session, workspace_id: int, n: int, settings: RfmSettings) -> dict[str, list[float]]:
    if settings.score_by == "thresholds":
        assert settings.r_days and settings.f_orders and settings.m_fen
        return {"r": list(settings.r_days), "f": list(settings.f_orders), "m": [float(v) for v in settings.m_fen]}
    ranks = [(k * n + 4) // 5 for k in range(1, 5)]  # ⌈k·n/5⌉
    cuts: dict[str, list[float]] = {}
    for name, column, worst_first in (("r", rfm.c.recency_days, rfm.c.recency_days.desc()),
                                      ("f", rfm.c.frequency, rfm.c.frequency),
                                      ("m", rfm.c.monetary_fen, rfm.c.monetary_fen)):
        ranked = select(column.label("v"), func.row_number().over(order_by=worst_first).label("rn")).where(
            rfm.c.workspace_id == workspace_id).subquery()
        values = {int(rank): value for rank, value in
                  session.execute(select(ranked.c.rn, ranked.c.v).where(ranked.c.rn.in_(ranks)))}
        cuts[name] = [float(values[rank]) for rank in ranks]
    return cuts


def _scores(cuts: dict[str, list[float]], highs: tuple[Any, ...], settings: RfmSettings) -> dict[str, Any]:
    def count(tests: list[ColumnElement[bool]]) -> Any:
        return 1 + sum((case((t, 1), else_=0) for t in tests), literal(0))

    days, frequency, monetary = rfm.c.recency_days, rfm.c.frequency, rfm.c.monetary_fen
    if settings.score_by == "thresholds":
        r_tests = [days <= c for c in cuts["r"]]
        f_tests = [frequency >= c for c in cuts["f"]]
        m_tests = [monetary >= c for c in cuts["m"]]
    else:
        r_tests = [days < c for c in cuts["r"]]
        f_tests = [frequency > c for c in cuts["f"]]
        m_tests = [monetary > c for c in cuts["m"]]
    # An average of equal values can land a rounding step off them: compare with a hair of slack.
    r_high, f_high, m_high = days <= highs[0] + EPSILON, frequency >= highs[1] - EPSILON, monetary >= highs[2] - EPSILON
    rfm_class = case(*[(and_(r_high if r else ~r_high, f_high if f else ~f_high, m_high if m else ~m_high), name)
                       for (r, f, m), name in CLASS_OF.items()], else_="")
    return {"r_score": count(r_tests), "f_score": count(f_tests), "m_score": count(m_tests),
            "r_high": case((r_high, true()), else_=false()), "f_high": case((f_high, true()), else_=false()),
            "m_high": case((m_high, true()), else_=false()), "rfm_class": rfm_class}


def _matrix(session: Session, workspace_id: int) -> dict[str, Any]:
    classes = {name: {"label": label, "customers": 0, "monetary_fen": 0} for name, label in CLASS_LABELS.items()}
    for name, n, spend in session.execute(select(rfm.c.rfm_class, func.count(), func.sum(rfm.c.monetary_fen))
                                          .where(rfm.c.workspace_id == workspace_id).group_by(rfm.c.rfm_class)):
        if name in classes:
            classes[name].update(customers=int(n), monetary_fen=int(spend or 0))
    grid = [[0] * 5 for _ in range(5)]  # grid[r-1][f-1]
    for r, f, n in session.execute(select(rfm.c.r_score, rfm.c.f_score, func.count())
                                   .where(rfm.c.workspace_id == workspace_id).group_by(rfm.c.r_score, rfm.c.f_score)):
        grid[int(r) - 1][int(f) - 1] = int(n)
    return {"classes": classes, "rf_grid": grid}


def _record_run(session: Session, workspace_id: int, now: datetime, summary: dict[str, Any]) -> None:
    run = session.get(LayeringRun, (workspace_id, "rfm"))
    if run is None:
        run = LayeringRun(workspace_id=workspace_id, kind="rfm")
        session.add(run)
    run.last_run_at, run.status, run.error = now, "ok", None
    run.duration_ms, run.summary = int(summary["duration_ms"]), summary
    session.flush()


def last_rfm_run(session: Session, workspace_id: int) -> LayeringRun | None:
    return session.get(LayeringRun, (workspace_id, "rfm"))


def rfm_of(session: Session, workspace_id: int, customer_id: int) -> CustomerRfm | None:
    return session.scalar(select(CustomerRfm).where(CustomerRfm.workspace_id == workspace_id,
                                                    CustomerRfm.customer_id == customer_id))


def ensure_rfm_segments(session: Session, ctx: WorkspaceContext) -> list[int]:
    """The eight classes as ready-made dynamic segments (created once); returns the ids of all eight."""
    existing: dict[str, int] = {key: segment_id for key, segment_id in session.execute(
        select(Segment.builtin_key, Segment.id).where(Segment.workspace_id == ctx.id,
                                                      Segment.builtin_key.like("rfm:%"))) if key}
    taken = set(session.scalars(select(Segment.name).where(Segment.workspace_id == ctx.id)))
    now = clock.now()
    for name, label in CLASS_LABELS.items():
        key = f"rfm:{name}"
        if key in existing:
            continue
        title = f"RFM·{label}"
        title = title if title not in taken else f"{title} ({key})"
        segment = Segment(workspace_id=ctx.id, name=title, description=f"RFM eight-class model: {label}",
                          kind=DYNAMIC, rule={"kind": "rfm", "class": name}, rule_version=1, source="rfm",
                          builtin_key=key, refresh_minutes=24 * 60, size=0, created_by="system", created_at=now,
                          updated_at=now)
        session.add(segment)
        session.flush()
        existing[key] = segment.id
    return [existing[f"rfm:{name}"] for name in CLASS_LABELS]
