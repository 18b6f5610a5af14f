"""Consent, opt-outs and blocks per customer, channel and purpose; one-time subscription consents.

A preference row is (channel or '*', purpose or '*', status). `opted_out` of marketing stops
marketing only; `blocked` stops everything, service messages included. A customer's own word
(a "TD" reply, an unsubscribe link) is recorded with its source and kept in the audit log.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.audit.service import record_audit
from siyu.kit import clock
from siyu.kit.errors import ValidationFailed
from siyu.kit.pagination import decode_cursor, encode_cursor
from siyu.messaging.models import ContactPreference, OneTimeConsent

STATUSES = ("opted_in", "opted_out", "blocked")
CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_]{1,29}$")
RESTRICTIVENESS = {"opted_in": 1, "opted_out": 2, "blocked": 3}


def _check(channel: str, purpose: str, status: str) -> None:
    # Any well-formed channel name: a customer's word on a channel added later (WeCom) is kept too.
    if channel != "*" and not CHANNEL_NAME.match(channel):
        raise ValidationFailed("channel is '*' or a channel name (lowercase letters, digits, _)", field="channel")
    if purpose not in ("marketing", "service", "*"):
        raise ValidationFailed("purpose must be marketing, service or *", field="purpose")
    if status not in STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}", field="status")


def set_preference(session: Session, workspace_id: int, customer_id: int, *, channel: str, purpose: str,
                   status: str, source: str, actor: str, note: str | None = None) -> ContactPreference:
    """Record a consent, opt-out or block (replacing the row for the same channel and purpose)."""
    from siyu.customers.service import resolve_customer_id

    _check(channel, purpose, status)
    customer_id = resolve_customer_id(session, workspace_id, customer_id)
    row = session.scalar(select(ContactPreference).where(
        ContactPreference.workspace_id == workspace_id, ContactPreference.customer_id == customer_id,
        ContactPreference.channel == channel, ContactPreference.purpose == purpose))
    previous = row.status if row is not None else None
    if row is None:
        row = ContactPreference(workspace_id=workspace_id, customer_id=customer_id, channel=channel, purpose=purpose)
        session.add(row)
    row.status, row.source, row.note, row.updated_at = status, source, note, clock.now()
    session.flush()
    if previous != status:
        record_audit(session, workspace_id, actor, f"contact.{status}", "customer", customer_id,
                     {"channel": channel, "purpose": purpose, "source": source, "previous": previous})
    return row


def preferences_of(session: Session, workspace_id: int, customer_id: int) -> list[ContactPreference]:
    return list(session.scalars(select(ContactPreference).where(
        ContactPreference.workspace_id == workspace_id, ContactPreference.customer_id == customer_id)
        .order_by(ContactPreference.channel, ContactPreference.purpose)))


@dataclass
class PreferencePage:
    items: list[ContactPreference]
    next_cursor: str | None


def list_preferences(session: Session, workspace_id: int, *, status: str | None = None, channel: str | None = None,
                     cursor: str | None = None, limit: int = 50) -> PreferencePage:
    limit = max(1, min(limit, 500))
    stmt = select(ContactPreference).where(ContactPreference.workspace_id == workspace_id)
    if status:
        stmt = stmt.where(ContactPreference.status == status)
    if channel:
        stmt = stmt.where(ContactPreference.channel == channel)
    if cursor:
        (last_id,) = decode_cursor(cursor)
        stmt = stmt.where(ContactPreference.id < int(last_id))
    rows = list(session.scalars(stmt.order_by(ContactPreference.id.desc()).limit(limit + 1)))
    return PreferencePage(rows[:limit], encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None)


def move_preferences(session: Session, workspace_id: int, absorbed_id: int, survivor_id: int) -> None:
    """After a merge the survivor keeps the stricter of both profiles' words, per channel and purpose."""
    absorbed = preferences_of(session, workspace_id, absorbed_id)
    kept = {(p.channel, p.purpose): p for p in preferences_of(session, workspace_id, survivor_id)}
    for row in absorbed:
        current = kept.get((row.channel, row.purpose))
        if current is None:
            row.customer_id = survivor_id
            continue
        if RESTRICTIVENESS[row.status] > RESTRICTIVENESS[current.status]:
            current.status, current.source, current.note = row.status, row.source, row.note
            current.updated_at = clock.now()
        session.delete(row)
    session.execute(update(OneTimeConsent).where(OneTimeConsent.workspace_id == workspace_id,
                                                 OneTimeConsent.customer_id == absorbed_id)
                    .values(customer_id=survivor_id))
    session.flush()


# -- one-time subscription consents ---------------------------------------------------------

def grant_one_time_consents(session: Session, workspace_id: int, customer_id: int, *, channel: str, topic: str = "",
                            count: int = 1) -> int:
    from siyu.customers.service import resolve_customer_id

    if not 1 <= count <= 100:
        raise ValidationFailed("count must be between 1 and 100", field="count")
    customer_id = resolve_customer_id(session, workspace_id, customer_id)
    now = clock.now()
    session.add_all([OneTimeConsent(workspace_id=workspace_id, customer_id=customer_id, channel=channel, topic=topic,
                                    granted_at=now) for _ in range(count)])
    session.flush()
    return count


def claim_one_time_consents(session: Session, workspace_id: int, channel: str,
                            wanted: Sequence[tuple[int, int, str]]) -> set[int]:
    """Reserve one unused consent for each (outbox_id, customer_id, topic); returns the outbox ids served."""
    claimed: set[int] = set()
    for outbox_id, customer_id, topic in wanted:
        candidate = (select(OneTimeConsent.id)
                     .where(OneTimeConsent.workspace_id == workspace_id, OneTimeConsent.customer_id == customer_id,
                            OneTimeConsent.channel == channel, OneTimeConsent.topic == topic,
                            OneTimeConsent.outbox_id.is_(None))
                     .order_by(OneTimeConsent.id).limit(1).scalar_subquery())
        result = session.execute(update(OneTimeConsent)
                                 .where(OneTimeConsent.id == candidate, OneTimeConsent.outbox_id.is_(None))
                                 .values(outbox_id=outbox_id))
        if getattr(result, "rowcount", 0):
            claimed.add(outbox_id)
    return claimed


def settle_one_time_consents(session: Session, outbox_ids: Sequence[int], *, used: bool) -> None:
    """A sent message uses its consent up; one that will never go gives it back."""
    if not outbox_ids:
        return
    stmt = update(OneTimeConsent).where(OneTimeConsent.outbox_id.in_(list(outbox_ids)),
                                        OneTimeConsent.used_at.is_(None))
    session.execute(stmt.values(used_at=clock.now()) if used else stmt.values(outbox_id=None))
