"""Moments in the workspace's zone: the next "10:00", the local day of a moment."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from siyu.kit.timefmt import zone


def next_time_of_day(moment: datetime, hhmm: str, timezone: str, *, strictly_after: bool = False) -> datetime:
    """The first local `hhmm` at or after `moment` (strictly after with `strictly_after`), in UTC.
    On a day when clocks skip that time, the wall time is taken as it reads after the jump."""
    tz = zone(timezone)
    hour, minute = (int(part) for part in hhmm.split(":"))
    local = moment.astimezone(tz)
    candidate = datetime.combine(local.date(), time(hour, minute), tzinfo=tz)
    if candidate < local or (strictly_after and candidate == local):
        candidate = datetime.combine(local.date() + timedelta(days=1), time(hour, minute), tzinfo=tz)
    return candidate.astimezone(UTC)


def local_moment(day: date, at: time, timezone: str) -> datetime:
    """`at` on local `day`, in UTC."""
    return datetime.combine(day, at, tzinfo=zone(timezone)).astimezone(UTC)


def local_day(moment: datetime, timezone: str) -> date:
    return moment.astimezone(zone(timezone)).date()
