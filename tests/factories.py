"""Builders of valid API payloads; tests change only what they are about."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

_counter = itertools.count(1)


def event(type_: str = "page_view", *, id: str | None = None, at: datetime | str = "2026-11-01T10:00:00+08:00",
          identities: Any = None, properties: dict[str, Any] | None = None, traits: dict[str, Any] | None = None
          ) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": id or f"evt-{next(_counter)}",
        "type": type_,
        "occurred_at": at.isoformat() if isinstance(at, datetime) else at,
        "identities": identities if identities is not None else [{"type": "wechat_unionid", "value": "u-1"}],
        "properties": properties or {},
    }
    if traits:
        body["traits"] = traits
    return body


def order(order_id: str = "O-1", *, unionid: str = "u-1", at: datetime | str = "2026-11-01T10:00:00+08:00",
          items: list[dict[str, Any]] | None = None, total_fen: int | None = None, id: str | None = None,
          **props: Any) -> dict[str, Any]:
    items = items or [{"sku": "MILK-1", "name": "有机奶粉 800g", "category": "母婴/奶粉", "quantity": 1,
                       "unit_price_fen": 29800}]
    total = total_fen if total_fen is not None else sum(i["quantity"] * i["unit_price_fen"] for i in items)
    return event("order_paid", id=id or f"evt-order-{order_id}", at=at,
                 identities=[{"type": "wechat_unionid", "value": unionid}],
                 properties={"order_id": order_id, "channel": "tmall", "currency": "CNY", "total_fen": total,
                             "items": items, **props})


def refund(order_id: str, amount_fen: int, *, unionid: str = "u-1", at: str = "2026-11-03T10:00:00+08:00",
           id: str | None = None) -> dict[str, Any]:
    return event("order_refunded", id=id or f"evt-refund-{order_id}-{amount_fen}", at=at,
                 identities=[{"type": "wechat_unionid", "value": unionid}],
                 properties={"order_id": order_id, "amount_fen": amount_fen})


def days(n: int) -> timedelta:
    return timedelta(days=n)
