"""The loyalty API contract. Points and fen are whole numbers: floats, strings and negatives are refused."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

Small = Annotated[StrictInt, Field(ge=0, le=1_000_000)]
Percent = Annotated[StrictInt, Field(ge=100, le=1000)]
Points = Annotated[StrictInt, Field(ge=1, le=10**12)]
Key = Annotated[str, Field(min_length=1, max_length=200)]
Reason = Annotated[str, Field(min_length=1, max_length=300)]
DayOfMonth = Annotated[StrictInt, Field(ge=1, le=31)]


class ProgrammeIn(BaseModel):
    """Programme settings. Days of the month beyond a month's length fall on its last day."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)] = "会员计划"
    points_per_yuan: Annotated[StrictInt, Field(ge=0, le=1000)] = 1
    return_window_days: Annotated[StrictInt, Field(ge=0, le=365)] = 7
    points_expiry: Literal["end_of_next_year", "months", "never"] = "end_of_next_year"
    points_expiry_months: Annotated[StrictInt, Field(ge=1, le=120)] | None = None
    allow_negative_balance: StrictBool = False
    check_in_points: Small = 0
    check_in_daily_cap: Small = 1
    check_in_monthly_cap: Small = 31
    share_points: Small = 0
    share_daily_cap: Small = 3
    share_monthly_cap: Small = 30
    growth_per_yuan: Small = 1
    growth_per_check_in: Small = 0
    growth_per_share: Small = 0
    tier_metric: Literal["spend_fen", "orders", "growth"] = "spend_fen"
    tier_window: Literal["lifetime", "rolling_months", "calendar_month", "calendar_year"] = "lifetime"
    tier_window_months: Annotated[StrictInt, Field(ge=1, le=60)] | None = None
    benefit_day: DayOfMonth = 1
    member_day: DayOfMonth | None = None
    deduction_points_per_yuan: Annotated[StrictInt, Field(ge=1, le=100_000)] = 100
    max_deduction_percent: Annotated[StrictInt, Field(ge=1, le=100)] = 50
    member_number_prefix: Annotated[str, Field(pattern=r"^[A-Z]{0,8}$")] = "M"

    @model_validator(mode="after")
    def _consistent(self) -> ProgrammeIn:
        if (self.points_expiry == "months") != (self.points_expiry_months is not None):
            raise ValueError("points_expiry_months goes with points_expiry 'months', and only with it")
        if (self.tier_window == "rolling_months") != (self.tier_window_months is not None):
            raise ValueError("tier_window_months goes with tier_window 'rolling_months', and only with it")
        return self


class ProgrammeOut(ProgrammeIn):
    model_config = ConfigDict(from_attributes=True, extra="ignore")

    id: int
    updated_at: datetime


class TierIn(BaseModel):
    """One tier, in rank order (the first is the base tier, threshold 0), with its benefits."""

    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,49}$")]
    name: Annotated[str, Field(min_length=1, max_length=100)]
    threshold: Annotated[StrictInt, Field(ge=0, le=10**13)]
    validity_months: Annotated[StrictInt, Field(ge=1, le=120)] | None = Field(
        None, description="months a reached tier lasts before its retention check; none: never re-checked")
    points_multiplier_percent: Percent = 100
    member_day_multiplier_percent: Percent = 100
    shop_discount_percent: Annotated[StrictInt, Field(ge=1, le=100)] = 100
    monthly_coupon_template_id: StrictInt | None = None
    monthly_coupon_quantity: Annotated[StrictInt, Field(ge=1, le=20)] = 1
    birthday_coupon_template_id: StrictInt | None = None
    birthday_points: Small = 0
    dedicated_service: StrictBool = False


class TiersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tiers: Annotated[list[TierIn], Field(min_length=1, max_length=20)]


class TierOut(TierIn):
    model_config = ConfigDict(from_attributes=True, extra="ignore")

    id: int
    rank: int


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Annotated[str, Field(min_length=1, max_length=50)]
    text_version: Annotated[str, Field(min_length=1, max_length=50)]
    at: AwareDatetime | None = Field(None, description="when the customer agreed; default now")


class EnrolIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: StrictInt
    consent: ConsentIn


class MemberOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: int
    member_number: str
    status: str
    tier_id: int
    tier_reached_at: datetime
    tier_valid_until: datetime | None
    points_balance: int
    points_pending: int
    points_debt: int
    consent_at: datetime
    consent_channel: str
    consent_text_version: str
    dedicated_staff_id: str | None
    enrolled_at: datetime
    left_at: datetime | None


class MemberListOut(BaseModel):
    items: list[MemberOut]
    next_cursor: str | None


class TierBriefOut(BaseModel):
    id: int
    code: str
    name: str
    rank: int
    threshold: int


class ProgressOut(BaseModel):
    metric: str
    window: str
    value: int = Field(description="the member's metric over the window now")
    next_tier: TierBriefOut | None
    to_next: int | None = Field(description="what is still missing to reach the next tier")


class BenefitsOut(BaseModel):
    points_multiplier_percent: int
    member_day_multiplier_percent: int
    shop_discount_percent: int
    monthly_coupon_template_id: int | None
    monthly_coupon_quantity: int
    birthday_coupon_template_id: int | None
    birthday_points: int
    dedicated_service: bool


class MemberSummaryOut(BaseModel):
    member: MemberOut
    tier: TierBriefOut
    progress: ProgressOut
    benefits: BenefitsOut
    usable_coupons: int
    points_expiring_soon: int = Field(description="available points expiring within 30 days")


class EntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    points: int
    pending: int
    debt: int
    cause_key: str
    reason: str
    order_id: str | None
    occurred_at: datetime
    created_at: datetime


class LedgerOut(BaseModel):
    items: list[EntryOut]
    next_cursor: str | None


class TierChangeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    from_tier_id: int | None
    to_tier_id: int
    direction: str
    reason: str
    metric_value: int
    valid_until: datetime | None
    changed_at: datetime


class AdjustIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: Annotated[StrictInt, Field(ge=-10**12, le=10**12)]
    reason: Reason
    idempotency_key: Key

    @model_validator(mode="after")
    def _not_zero(self) -> AdjustIn:
        if self.points == 0:
            raise ValueError("an adjustment moves at least one point")
        return self


class RedeemPointsIn(BaseModel):
    """Spend points on a gift (or anything the brand hands over outside the coupon system)."""

    model_config = ConfigDict(extra="forbid")

    points: Points
    reason: Reason
    idempotency_key: Key


class RedeemForCouponIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template_id: StrictInt
    idempotency_key: Key


class DeductIn(BaseModel):
    """Use points as money off an order: value by the programme's deduction rule, capped per order."""

    model_config = ConfigDict(extra="forbid")

    order_id: Annotated[str, Field(min_length=1, max_length=200)]
    order_amount_fen: Annotated[StrictInt, Field(ge=0, le=10**13)]
    points: Points


class MemberPriceOut(BaseModel):
    customer_id: int
    tier_code: str
    order_amount_fen: int
    shop_discount_percent: int = Field(description="the tier's shop discount (95 = 95折); 100 once a member left")
    member_discount_fen: int
    member_price_fen: int = Field(description="the order at the member's discount, rounded half up to the fen")
    points_balance: int
    max_deduction_points: int = Field(description="the most points that may pay for this order (whole fen)")
    max_deduction_fen: int


class PointsResultOut(BaseModel):
    entry: EntryOut
    points_balance: int
    deduction_fen: int | None = None
    coupon_code: str | None = None


class StaffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    staff_id: Annotated[str, Field(min_length=1, max_length=100)] | None


class BenefitRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: Annotated[str, Field(pattern=r"^\d{4}-\d{2}$")] | None = Field(
        None, description="YYYY-MM; default the current month of the workspace")


class BenefitRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    period: str
    members_granted: int
    coupons_issued: int
    points_awarded: int
    started_at: datetime
    finished_at: datetime | None
