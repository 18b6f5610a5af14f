"""Setting up the programme and its tier ladder (with each tier's benefits)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from siyu.audit.service import record_audit
from siyu.kit import clock
from siyu.loyalty import repository, rules
from siyu.loyalty.errors import InvalidTierLadder, ProgrammeNotConfigured, TierInUse
from siyu.loyalty.models import Programme, Tier
from siyu.loyalty.schemas import ProgrammeIn, TierIn
from siyu.workspaces.service import WorkspaceContext

DEFAULT_TIER = TierIn(code="member", name="普通会员", threshold=0)


def get_programme(session: Session, workspace_id: int) -> Programme:
    programme = repository.programme(session, workspace_id)
    if programme is None:
        raise ProgrammeNotConfigured("set up the membership programme first (PUT /api/v1/loyalty/programme)")
    return programme


def configure_programme(session: Session, ctx: WorkspaceContext, data: ProgrammeIn, *, actor: str) -> Programme:
    """Create the programme (with a base tier) or change its settings. Earlier earnings keep their terms."""
    now = clock.now()
    programme = repository.programme(session, ctx.id)
    values = data.model_dump()
    if programme is None:
        programme = Programme(workspace_id=ctx.id, member_seq=0, created_at=now, updated_at=now, **values)
        session.add(programme)
        session.flush()
        if not repository.tiers(session, ctx.id):
            _write_tiers(session, ctx.id, [DEFAULT_TIER], now)
    else:
        for name, value in values.items():
            setattr(programme, name, value)
        programme.updated_at = now
    session.flush()
    record_audit(session, ctx.id, actor, "loyalty.programme_configured", "loyalty_programme", programme.id, values)
    return programme


@dataclass(frozen=True)
class Ladder:
    """The tiers in rank order, with lookups the hot paths need."""

    tiers: list[Tier]
    thresholds: list[int] = field(init=False)
    _by_id: dict[int, Tier] = field(init=False)
    _next_threshold: dict[int, int | None] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds", [t.threshold for t in self.tiers])
        object.__setattr__(self, "_by_id", {t.id: t for t in self.tiers})
        object.__setattr__(self, "_next_threshold", {
            t.id: self.tiers[rank + 1].threshold if rank + 1 < len(self.tiers) else None
            for rank, t in enumerate(self.tiers)})

    def next_threshold(self, tier: Tier) -> int | None:
        """The threshold of the tier above `tier` (None at the top)."""
        return self._next_threshold[tier.id]

    def by_id(self, tier_id: int) -> Tier:
        return self._by_id[tier_id]

    def base(self) -> Tier:
        return self.tiers[0]

    def above(self, tier: Tier) -> Tier | None:
        return self.tiers[tier.rank + 1] if tier.rank + 1 < len(self.tiers) else None


def ladder(session: Session, workspace_id: int) -> Ladder:
    return Ladder(repository.tiers(session, workspace_id))


def set_tiers(session: Session, ctx: WorkspaceContext, tiers: list[TierIn], *, actor: str) -> list[Tier]:
    """Replace the ladder. Tiers are matched by code (members keep theirs); a tier someone holds
    cannot be removed. Thresholds must start at 0 and rise strictly; coupon templates must exist."""
    get_programme(session, ctx.id)
    problem = rules.ladder_problem([t.threshold for t in tiers])
    if problem is not None:
        index, message = problem
        raise InvalidTierLadder(message, field=f"tiers[{index}].threshold")
    codes = [t.code for t in tiers]
    for index, code in enumerate(codes):
        if codes.index(code) != index:
            raise InvalidTierLadder(f"tier code {code!r} appears twice", field=f"tiers[{index}].code")
    _check_templates(session, ctx.id, tiers)
    written = _write_tiers(session, ctx.id, tiers, clock.now())
    record_audit(session, ctx.id, actor, "loyalty.tiers_set", "loyalty_programme", ctx.id,
                 {"tiers": [t.model_dump() for t in tiers]})
    return written


def _check_templates(session: Session, workspace_id: int, tiers: list[TierIn]) -> None:
    from siyu.coupons.service import get_template
    from siyu.kit.errors import NotFound

    for index, tier in enumerate(tiers):
        for name in ("monthly_coupon_template_id", "birthday_coupon_template_id"):
            template_id = getattr(tier, name)
            if template_id is None:
                continue
            try:
                get_template(session, workspace_id, template_id)
            except NotFound as exc:
                exc.field = f"tiers[{index}].{name}"
                raise


def _write_tiers(session: Session, workspace_id: int, tiers: list[TierIn], now: datetime) -> list[Tier]:
    existing = {t.code: t for t in repository.tiers(session, workspace_id)}
    removed = [t for code, t in existing.items() if code not in {x.code for x in tiers}]
    if removed:
        held = repository.tier_holders(session, workspace_id, [t.id for t in removed])
        in_use = [t.code for t in removed if held.get(t.id)]
        if in_use:
            raise TierInUse(f"members hold tier {in_use[0]!r}; keep it in the ladder", field="tiers")
        for tier in removed:
            session.delete(tier)
    written = []
    for rank, data in enumerate(tiers):
        tier = existing.get(data.code) or Tier(workspace_id=workspace_id, created_at=now)
        session.add(tier)
        for name, value in data.model_dump().items():
            setattr(tier, name, value)
        tier.rank, tier.updated_at = rank, now
        written.append(tier)
    session.flush()
    return written
