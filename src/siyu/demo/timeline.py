"""Time for the demo generator: integer epoch seconds, the history window, Beijing daytime."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any, NamedTuple

MINUTE = 60
HOUR = 3_600
DAY = 86_400
_BEIJING_OFFSET = 8 * HOUR

# Relative activity by Beijing hour 0..23: quiet at night, a lunch bump, busiest 20:00-22:00.
_HOUR_WEIGHTS = (1, 0.5, 0.3, 0.2, 0.2, 0.3, 1, 3, 5, 6, 6, 6, 8, 7, 6, 6, 6, 6, 7, 9, 12, 13, 11, 5)
_HOUR_CUM = tuple(itertools.accumulate(_HOUR_WEIGHTS))


@dataclass(frozen=True, slots=True)
class Window:
    """The history: events fall in [start_ts, end_ts)."""

    start_ts: int
    end_ts: int

    @property
    def span(self) -> int:
        return self.end_ts - self.start_ts

    def fraction(self, ts: int) -> float:
        """Where ts lies in the window, 0.0 at the start and 1.0 at the end."""
        return (ts - self.start_ts) / self.span

    def daytime(self, rng: random.Random, ts: int, not_before: int | None = None) -> int:
        """A plausible Beijing time of day on ts's local day, or ts itself if that time would fall
        before `not_before` (default: the window start) or at/after the end.

        ts is first clamped into [not_before, end), so the result always lies there too.
        """
        floor = self.start_ts if not_before is None else not_before
        ts = min(max(ts, floor), self.end_ts - 1)
        local_day = (ts + _BEIJING_OFFSET) // DAY
        hour = rng.choices(range(24), cum_weights=_HOUR_CUM)[0]
        moment = local_day * DAY - _BEIJING_OFFSET + hour * HOUR + rng.randrange(HOUR)
        return moment if floor <= moment < self.end_ts else ts


class Activity(NamedTuple):
    """One thing a customer did, before identities and the envelope are attached.

    `via` is the touchpoint (wecom, mini_program, douyin, tmall, ...): it decides which identities the
    event carries, evaluated at `identity_ts` (the order's time for a refund, else `ts`).
    """

    ts: int
    type: str
    via: str
    properties: dict[str, Any]
    traits: dict[str, str] | None = None
    identity_ts: int | None = None
