"""Time rules of the contact policy in the workspace's zone: quiet hours, calendar windows and the
calendar periods (day, ISO week, month) that caps and quotas count in."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from siyu.kit.clock import ensure_utc
from siyu.messaging.settings import CalendarWindow, PolicySettings, QuietHours

MAX_MOVES = 16  # quiet hours and windows can chain; a sane calendar settles in a few moves


def in_quiet_hours(local: datetime, quiet: QuietHours) -> bool:
    moment = local.time().replace(tzinfo=None)
    if quiet.start < quiet.end:
        return quiet.start <= moment < quiet.end
    return moment >= quiet.start or moment < quiet.end


def quiet_hours_end(local: datetime, quiet: QuietHours) -> datetime:
    """The first moment after `local` (which is inside quiet hours) when they are over."""
    end_today = _at(local.date(), quiet.end, local.tzinfo)
    return end_today if end_today > local else _at(local.date() + timedelta(days=1), quiet.end, local.tzinfo)


def _at(day: date, moment: time, tz: object) -> datetime:
    return datetime.combine(day, moment, tzinfo=tz)  # type: ignore[arg-type]


def window_at(local: datetime, windows: list[CalendarWindow], kind: str, purpose: str) -> CalendarWindow | None:
    wall = local.replace(tzinfo=None)
    for window in windows:
        if window.kind == kind and purpose in window.purposes and window.start <= wall < window.end:
            return window
    return None


def next_allowed(due_at: datetime, purpose: str, policy: PolicySettings, tz: ZoneInfo) -> tuple[datetime, str | None]:
    """The earliest time at or after `due_at` outside quiet hours and blackouts, and the rule that
    moved it (None when `due_at` is already allowed)."""
    local = ensure_utc(due_at).astimezone(tz)
    rule: str | None = None
    for _ in range(MAX_MOVES):
        blackout = window_at(local, policy.calendar, "blackout", purpose)
        if blackout is not None:
            local = blackout.end.replace(tzinfo=tz)
            rule = rule or f"blackout:{blackout.name}"
            continue
        quiet = policy.quiet_hours
        if quiet is not None and purpose in quiet.purposes and in_quiet_hours(local, quiet):
            local = quiet_hours_end(local, quiet)
            rule = rule or "quiet_hours"
            continue
        break
    return local.astimezone(ensure_utc(due_at).tzinfo), rule


def period_start(local_day: date, period: str) -> date:
    if period == "day":
        return local_day
    if period == "week":
        return local_day - timedelta(days=local_day.weekday())
    return local_day.replace(day=1)


def cap_multiplier(local: datetime, policy: PolicySettings, purpose: str) -> int:
    boost = window_at(local, policy.calendar, "boost", purpose)
    return boost.cap_multiplier if boost is not None else 1
