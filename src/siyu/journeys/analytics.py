"""A journey's numbers: entered, where runs are now, how they ended, converted — against the holdout
with a confidence interval, and per A/B branch with a significance test.

Conversion is the share of runs whose goal event happened within the goal window. The uplift is
the treated rate minus the holdout rate, with a 95 % Wald interval of the difference and a
two-sided p-value of the pooled two-proportion z-test; branches are compared by a chi-square test
of independence (k branches × converted or not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.journeys.definitions import Definition
from siyu.journeys.models import RUN_ACTIVE, JourneyRun, JourneyStepLog
from siyu.journeys.service import get_journey, published_definition

Z95 = 1.959963984540054


@dataclass
class Comparison:
    treated: int
    treated_converted: int
    control: int
    control_converted: int

    @property
    def treated_rate(self) -> float:
        return self.treated_converted / self.treated if self.treated else 0.0

    @property
    def control_rate(self) -> float:
        return self.control_converted / self.control if self.control else 0.0

    @property
    def uplift(self) -> float:
        return self.treated_rate - self.control_rate

    def interval(self) -> tuple[float, float] | None:
        if not self.treated or not self.control:
            return None
        p1, p2 = self.treated_rate, self.control_rate
        se = math.sqrt(p1 * (1 - p1) / self.treated + p2 * (1 - p2) / self.control)
        return self.uplift - Z95 * se, self.uplift + Z95 * se

    def p_value(self) -> float | None:
        if not self.treated or not self.control:
            return None
        pooled = (self.treated_converted + self.control_converted) / (self.treated + self.control)
        se = math.sqrt(pooled * (1 - pooled) * (1 / self.treated + 1 / self.control))
        if se == 0:
            return 1.0
        return math.erfc(abs(self.uplift / se) / math.sqrt(2))

    def as_dict(self) -> dict[str, Any]:
        interval = self.interval()
        return {"treated": self.treated, "treated_converted": self.treated_converted,
                "treated_rate": self.treated_rate, "holdout": self.control,
                "holdout_converted": self.control_converted, "holdout_rate": self.control_rate,
                "uplift": self.uplift, "ci95": list(interval) if interval else None, "p_value": self.p_value()}


def chi_square_p(table: list[tuple[int, int]]) -> float | None:
    """p-value of the chi-square test of independence of a k × 2 table (converted, not converted)."""
    rows = [(a, b) for a, b in table if a + b > 0]
    if len(rows) < 2:
        return None
    total = sum(a + b for a, b in rows)
    col = (sum(a for a, _ in rows), sum(b for _, b in rows))
    if 0 in col:
        return 1.0
    stat = 0.0
    for a, b in rows:
        n = a + b
        for observed, column in ((a, col[0]), (b, col[1])):
            expected = n * column / total
            stat += (observed - expected) ** 2 / expected
    return _chi2_sf(stat, len(rows) - 1)


def _chi2_sf(x: float, dof: int) -> float:
    """Upper tail of the chi-square distribution: Q(dof/2, x/2), by the regularised gamma series."""
    if x <= 0:
        return 1.0
    a, z = dof / 2, x / 2
    if z < a + 1:  # series for the lower part P
        term = total = 1 / a
        n = 0
        while abs(term) > abs(total) * 1e-15 and n < 10_000:
            n += 1
            term *= z / (a + n)
            total += term
        return max(0.0, 1 - total * math.exp(-z + a * math.log(z) - math.lgamma(a)))
    # continued fraction for Q (Lentz)
    tiny = 1e-300
    b = z + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(-z + a * math.log(z) - math.lgamma(a)) * h)


@dataclass
class JourneyReport:
    entered: int
    holdout: int
    active: int
    converted: int
    in_step: dict[str, int]
    exits: dict[str, int]
    steps: dict[str, dict[str, int]]
    conversion: Comparison
    branches: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"entered": self.entered, "holdout": self.holdout, "active": self.active, "converted": self.converted,
                "in_step": self.in_step, "exits": self.exits, "steps": self.steps,
                "conversion": self.conversion.as_dict(), "branches": self.branches}


def journey_report(session: Session, workspace_id: int, journey_id: int) -> JourneyReport:
    journey = get_journey(session, workspace_id, journey_id)
    runs = JourneyRun
    scope = (runs.workspace_id == workspace_id, runs.journey_id == journey.id)
    totals = {bool(h): (int(n), int(c)) for h, n, c in session.execute(
        select(runs.holdout, func.count(), func.count(runs.converted_at)).where(*scope).group_by(runs.holdout))}
    treated, treated_converted = totals.get(False, (0, 0))
    control, control_converted = totals.get(True, (0, 0))
    in_step = {str(s): int(n) for s, n in session.execute(
        select(runs.step_id, func.count()).where(*scope, runs.status == RUN_ACTIVE).group_by(runs.step_id))}
    exits = {str(r): int(n) for r, n in session.execute(
        select(runs.exit_reason, func.count()).where(*scope, runs.status != RUN_ACTIVE).group_by(runs.exit_reason))}
    steps: dict[str, dict[str, int]] = {}
    for step_id, outcome, n in session.execute(
            select(JourneyStepLog.step_id, JourneyStepLog.outcome, func.count())
            .where(JourneyStepLog.journey_id == journey.id, JourneyStepLog.workspace_id == workspace_id)
            .group_by(JourneyStepLog.step_id, JourneyStepLog.outcome)):
        steps.setdefault(step_id, {})[outcome] = int(n)
    report = JourneyReport(treated + control, control, sum(in_step.values()), treated_converted + control_converted,
                           in_step, exits, steps, Comparison(treated, treated_converted, control, control_converted))
    if journey.published_version_id is not None:
        _, definition = published_definition(session, journey)
        report.branches = _branches(session, workspace_id, journey.id, definition)
    return report


def _branches(session: Session, workspace_id: int, journey_id: int, definition: Definition) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for step in definition.steps.values():
        if step.type != "split":
            continue
        counts = {key: (0, 0) for key, _ in step.params["branches"]}
        rows = session.execute(
            select(JourneyStepLog.outcome, func.count(), func.count(JourneyRun.converted_at))
            .join(JourneyRun, JourneyRun.id == JourneyStepLog.run_id)
            .where(JourneyStepLog.journey_id == journey_id, JourneyStepLog.workspace_id == workspace_id,
                   JourneyStepLog.step_id == step.id)
            .group_by(JourneyStepLog.outcome))
        for outcome, n, converted in rows:
            counts[outcome] = (int(n), int(converted))
        table = [(c, n - c) for n, c in counts.values()]
        found[step.id] = {
            "branches": {key: {"runs": n, "converted": c, "rate": c / n if n else 0.0}
                         for key, (n, c) in counts.items()},
            "p_value": chi_square_p(table)}
    return found
