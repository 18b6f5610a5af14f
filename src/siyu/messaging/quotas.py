"""Platform quotas as data: which limits a platform imposes, per customer, staff member or workspace
and per day, week or month. Defaults (rows without a workspace) ship with the migration — today
WeCom lets each customer receive one group-send message a day, whoever sends it — and a workspace
overrides a default by adding a row with the same channel and name (`active=False` to lift it)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from siyu.kit import clock
from siyu.kit.errors import ValidationFailed
from siyu.messaging.models import PlatformQuota

SCOPES = ("customer", "staff", "workspace")
PERIODS = ("day", "week", "month")


@dataclass(frozen=True, slots=True)
class QuotaRule:
    channel: str
    name: str
    scope: str
    period: str
    max_count: int
    purposes: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"quota:{self.channel}:{self.name}"


def quota_rows(session: Session, workspace_id: int) -> list[PlatformQuota]:
    """Defaults and this workspace's rows; a workspace row hides the default with its channel and name."""
    rows = list(session.scalars(select(PlatformQuota)
                                .where(or_(PlatformQuota.workspace_id.is_(None),
                                           PlatformQuota.workspace_id == workspace_id))
                                .order_by(PlatformQuota.channel, PlatformQuota.name, PlatformQuota.id)))
    own = {(r.channel, r.name) for r in rows if r.workspace_id is not None}
    return [r for r in rows if r.workspace_id is not None or (r.channel, r.name) not in own]


def active_quotas(session: Session, workspace_id: int) -> list[QuotaRule]:
    return [QuotaRule(r.channel, r.name, r.scope, r.period, r.max_count, tuple(r.purposes))
            for r in quota_rows(session, workspace_id) if r.active]


def set_quota(session: Session, workspace_id: int, *, channel: str, name: str, scope: str, period: str,
              max_count: int, purposes: list[str], active: bool = True, note: str = "") -> PlatformQuota:
    """Create or replace this workspace's quota `channel`/`name`."""
    if scope not in SCOPES:
        raise ValidationFailed(f"scope must be one of {', '.join(SCOPES)}", field="scope")
    if period not in PERIODS:
        raise ValidationFailed(f"period must be one of {', '.join(PERIODS)}", field="period")
    if max_count < 0:
        raise ValidationFailed("max_count cannot be negative", field="max_count")
    if any(p not in ("marketing", "service") for p in purposes):
        raise ValidationFailed("purposes are marketing and/or service", field="purposes")
    row = session.scalar(select(PlatformQuota).where(PlatformQuota.workspace_id == workspace_id,
                                                     PlatformQuota.channel == channel, PlatformQuota.name == name))
    if row is None:
        row = PlatformQuota(workspace_id=workspace_id, channel=channel, name=name, created_at=clock.now())
        session.add(row)
    row.scope, row.period, row.max_count, row.purposes, row.active, row.note = (
        scope, period, max_count, purposes, active, note)
    session.flush()
    return row
