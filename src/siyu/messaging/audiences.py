"""Who a broadcast goes to. An audience is one of

- `{"kind": "list", "customer_ids": [...]}` — explicit ids (merged ids follow their survivor);
- `{"kind": "csv", "csv": "..."}` — a CSV with a header: `customer_id`, or identity columns such
  as `phone`, `email`, `wechat_unionid` (each row names one customer);
- `{"kind": "tag", "tag_id": 7}` — the customers wearing a tag, when the broadcast fills;
- `{"kind": "segment", "segment_id": 3}` — a segment's members, when the broadcast fills;
- `{"kind": "all"}` — every customer of the workspace.

Lists and CSVs are resolved when the broadcast is created and kept in `broadcast_audience`;
tags, segments and "all" are read through their domains' service functions when it is sent.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import Select, func, insert, select
from sqlalchemy.orm import Session

from siyu.messaging.errors import AudienceInvalid
from siyu.messaging.models import BroadcastAudienceMember

KINDS = ("list", "csv", "tag", "segment", "all")
MAX_LIST = 1_000_000


def normalise_audience(session: Session, workspace_id: int, audience: dict[str, Any]
                       ) -> tuple[dict[str, Any], list[int]]:
    """Check an audience; lists and CSVs come back with their resolved customer ids (and what matched no one)."""
    kind = audience.get("kind")
    if kind not in KINDS:
        raise AudienceInvalid(f"audience kind must be one of {', '.join(KINDS)}", field="audience.kind")
    if kind == "list":
        ids = audience.get("customer_ids")
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise AudienceInvalid("customer_ids must be a list of integers", field="audience.customer_ids")
        return _resolved(session, workspace_id, "list", [int(i) for i in ids], [])
    if kind == "csv":
        text = audience.get("csv")
        if not isinstance(text, str) or not text.strip():
            raise AudienceInvalid("csv must be the text of a CSV file with a header", field="audience.csv")
        ids, pairs = parse_csv(text)
        from siyu.customers.service import customers_by_identities

        matched = customers_by_identities(session, workspace_id, pairs) if pairs else {}
        unmatched = [f"{t}:{v}" for t, v in pairs if (t, v) not in matched]
        return _resolved(session, workspace_id, "csv", ids + list(matched.values()), unmatched)
    if kind == "tag":
        _positive(audience, "tag_id")
        from siyu.tags.service import get_tag

        get_tag(session, workspace_id, int(audience["tag_id"]))
        return {"kind": "tag", "tag_id": int(audience["tag_id"])}, []
    if kind == "segment":
        _positive(audience, "segment_id")
        _segment_select(session, workspace_id, int(audience["segment_id"]))
        return {"kind": "segment", "segment_id": int(audience["segment_id"])}, []
    return {"kind": "all"}, []


def _positive(audience: dict[str, Any], key: str) -> None:
    value = audience.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise AudienceInvalid(f"{key} must be a positive integer", field=f"audience.{key}")


def _resolved(session: Session, workspace_id: int, kind: str, ids: list[int], unmatched: list[str]
              ) -> tuple[dict[str, Any], list[int]]:
    from siyu.customers.service import resolve_customer_ids

    if len(ids) > MAX_LIST:
        raise AudienceInvalid(f"a list audience holds at most {MAX_LIST:,} customers", field="audience")
    survivors = resolve_customer_ids(session, workspace_id, ids)
    unknown = sorted({i for i in ids if i not in survivors})
    summary: dict[str, Any] = {"kind": kind, "unknown": [str(i) for i in unknown[:100]] + unmatched[:100],
                               "unknown_count": len(unknown) + len(unmatched)}
    return summary, sorted(set(survivors.values()))


def parse_csv(text: str) -> tuple[list[int], list[tuple[str, str]]]:
    """Customer ids and (identity type, value) pairs from a CSV whose header names its columns."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = [c.strip() for c in (reader.fieldnames or []) if c and c.strip()]
    if not columns:
        raise AudienceInvalid("the CSV needs a header row (customer_id, phone, email, ...)", field="audience.csv")
    ids: list[int] = []
    pairs: list[tuple[str, str]] = []
    for line, row in enumerate(reader, start=2):
        for column in columns:
            value = (row.get(column) or "").strip()
            if not value:
                continue
            if column == "customer_id":
                if not value.isdigit():
                    raise AudienceInvalid(f"line {line}: customer_id {value!r} is not a number", field="audience.csv")
                ids.append(int(value))
            else:
                pairs.append((column, value))
    return ids, pairs


def store_list(session: Session, broadcast_id: int, customer_ids: list[int]) -> None:
    for start in range(0, len(customer_ids), 5000):
        session.execute(insert(BroadcastAudienceMember), [{"broadcast_id": broadcast_id, "customer_id": cid}
                                                          for cid in customer_ids[start:start + 5000]])


def _segment_select(session: Session, workspace_id: int, segment_id: int) -> Select[Any]:
    from siyu.segments.service import get_segment, member_ids

    get_segment(session, workspace_id, segment_id)
    return member_ids(workspace_id, segment_id)


def audience_select(session: Session, workspace_id: int, broadcast_id: int, audience: dict[str, Any]) -> Select[Any]:
    """A SELECT of the audience's customer ids (one column)."""
    kind = audience["kind"]
    if kind in ("list", "csv"):
        return select(BroadcastAudienceMember.customer_id).where(BroadcastAudienceMember.broadcast_id == broadcast_id)
    if kind == "tag":
        from siyu.tags.service import tagged_customer_ids

        return tagged_customer_ids(workspace_id, int(audience["tag_id"]))  # type: ignore[no-any-return]
    if kind == "segment":
        return _segment_select(session, workspace_id, int(audience["segment_id"]))
    from siyu.customers.service import live_customer_ids

    return live_customer_ids(workspace_id)


def next_batch(session: Session, ids: Select[Any], after: int, size: int) -> list[int]:
    """Audience ids above `after`, ascending: fills walk the audience by keyset and can resume."""
    sub = ids.subquery()
    column = sub.c[0]
    return [int(i) for i in session.scalars(select(column).where(column > after).order_by(column).limit(size))]


def audience_size(session: Session, ids: Select[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(ids.subquery())) or 0)
