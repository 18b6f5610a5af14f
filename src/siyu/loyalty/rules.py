"""The programme's arithmetic and calendars: pure functions, integers only, no database.

Calendar rules (documented for operators in docs/adr/0003-points-ledger.md):
- a day of the month beyond the month's length (the 31st in February) falls on the month's last day;
- "N months later" keeps the day of the month, clamped the same way (Jan 31 + 1 month = Feb 28/29);
- points of an order are floor(yuan paid × points per ¥ × tier multiplier × member-day multiplier);
- windows and calendars use the workspace's time zone.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from siyu.kit.clock import ensure_utc
from siyu.kit.timefmt import zone

METRICS = ("spend_fen", "orders", "growth")
WINDOWS = ("lifetime", "rolling_months", "calendar_month", "calendar_year")
EXPIRY_POLICIES = ("end_of_next_year", "months", "never")


def clamp_day(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def add_months(value: date, months: int) -> date:
    index = value.year * 12 + value.month - 1 + months
    return clamp_day(index // 12, index % 12 + 1, value.day)


def local_date(at: datetime, tz: str | ZoneInfo) -> date:
    return ensure_utc(at).astimezone(zone(tz) if isinstance(tz, str) else tz).date()


def day_key(day: date) -> int:
    """YYYYMMDD: caps per day compare it, caps per month compare it // 100."""
    return day.year * 10000 + day.month * 100 + day.day


def start_of(day: date, tz: str | ZoneInfo) -> datetime:
    """The UTC instant a local day begins."""
    local_zone = zone(tz) if isinstance(tz, str) else tz
    return ensure_utc(datetime.combine(day, time(0), tzinfo=local_zone))


def later_by_months(at: datetime, months: int, tz: str | ZoneInfo) -> datetime:
    """The same local wall time `months` later (day clamped to the month's end)."""
    local_zone = zone(tz) if isinstance(tz, str) else tz
    local = ensure_utc(at).astimezone(local_zone)
    moved = add_months(local.date(), months)
    return ensure_utc(datetime.combine(moved, local.time(), tzinfo=local_zone))


def is_member_day(at: datetime, tz: str | ZoneInfo, member_day: int | None) -> bool:
    return is_member_date(local_date(at, tz), member_day)


def is_member_date(day: date, member_day: int | None) -> bool:
    return member_day is not None and day == clamp_day(day.year, day.month, member_day)


def benefit_date(year: int, month: int, benefit_day: int) -> date:
    return clamp_day(year, month, benefit_day)


def month_period(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


# -- points ------------------------------------------------------------------------------------

def order_points(amount_fen: int, points_per_yuan: int, multiplier_percent: int, member_day_percent: int) -> int:
    return amount_fen * points_per_yuan * multiplier_percent * member_day_percent // 1_000_000


def growth_for_order(amount_fen: int, growth_per_yuan: int) -> int:
    return amount_fen * growth_per_yuan // 100


def still_deserved(earned: int, basis_fen: int, net_fen: int) -> int:
    """What an earning on `basis_fen` is worth once the order is down to `net_fen` (refunds)."""
    if basis_fen <= 0:
        return 0
    return earned * max(0, min(net_fen, basis_fen)) // basis_fen


def points_expiry(earned_at: datetime, tz: str | ZoneInfo, policy: str, months: int | None) -> datetime | None:
    """By default points live until the end of the next calendar year (local): earned in 2026,
    they expire when 2028 begins."""
    if policy == "never":
        return None
    if policy == "months":
        assert months is not None
        return later_by_months(earned_at, months, tz)
    year = local_date(earned_at, tz).year
    return start_of(date(year + 2, 1, 1), tz)


def member_price_fen(amount_fen: int, shop_discount_percent: int) -> int:
    """An amount at a tier's shop discount (95 = 95折), rounded half up to the fen."""
    return (amount_fen * shop_discount_percent + 50) // 100


def deduction_fen(points: int, points_per_yuan: int) -> int | None:
    """Fen a number of points is worth as a deduction, or None when it is not a whole number of fen."""
    if (points * 100) % points_per_yuan:
        return None
    return points * 100 // points_per_yuan


# -- tiers -------------------------------------------------------------------------------------

def window_start(at: datetime, tz: str | ZoneInfo, window: str, months: int | None) -> datetime | None:
    """Where the qualification window begins when evaluated at `at`; None for lifetime."""
    if window == "lifetime":
        return None
    day = local_date(at, tz)
    if window == "calendar_month":
        return start_of(day.replace(day=1), tz)
    if window == "calendar_year":
        return start_of(date(day.year, 1, 1), tz)
    assert months is not None
    return later_by_months(at, -months, tz)


def metric_value(metric: str, spend_fen: int, orders: int, growth: int) -> int:
    return (spend_fen, orders, growth)[METRICS.index(metric)]


def qualifying_rank(thresholds: Sequence[int], value: int) -> int:
    """The highest rank whose threshold `value` reaches (thresholds are in rank order, first is 0)."""
    rank = 0
    for index, threshold in enumerate(thresholds):
        if value >= threshold:
            rank = index
    return rank


def ladder_problem(thresholds: Sequence[int]) -> tuple[int, str] | None:
    """(index, message) of the first problem of a tier ladder, or None when it is sound."""
    if not thresholds:
        return 0, "a programme needs at least one tier"
    if thresholds[0] != 0:
        return 0, "the first (base) tier must have threshold 0: every member qualifies for it"
    for index in range(1, len(thresholds)):
        if thresholds[index] <= thresholds[index - 1]:
            return index, ("thresholds must rise strictly with each tier "
                           f"(tier {index} has {thresholds[index]}, the tier below has {thresholds[index - 1]})")
    return None
