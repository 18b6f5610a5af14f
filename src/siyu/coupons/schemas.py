"""The coupons API contract. Money is integer fen: floats, strings and negatives are refused."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, model_validator

Fen = Annotated[StrictInt, Field(ge=0, le=10**13)]
PositiveFen = Annotated[StrictInt, Field(gt=0, le=10**13)]
Count = Annotated[StrictInt, Field(ge=1, le=10**9)]
Key = Annotated[str, Field(min_length=1, max_length=200)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class TemplateIn(BaseModel):
    """A coupon template. Validity is either fixed dates (`valid_from`/`valid_until`) or
    `valid_days` from issue; scope (`categories`, `skus`) empty means the whole order."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Annotated[str, Field(max_length=1000)] = ""
    kind: Literal["amount_off", "threshold_off", "percent_off", "gift"]
    amount_off_fen: PositiveFen | None = None
    threshold_fen: Fen = 0
    percent_off: Annotated[StrictInt, Field(ge=1, le=99)] | None = Field(
        None, description="percent taken off: 10 is 9折")
    max_discount_fen: PositiveFen | None = None
    gift_name: Name | None = None
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    valid_days: Annotated[StrictInt, Field(ge=1, le=3660)] | None = None
    total_stock: Count | None = None
    per_customer_limit: Annotated[StrictInt, Field(ge=1, le=10_000)] | None = None
    categories: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=200)] = []
    skus: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=1000)] = []
    points_cost: Count | None = Field(None, description="points a member pays to get one; none: not for points")
    restore_on_refund: bool = Field(False, description="a full refund of the order gives the coupon back")

    @model_validator(mode="after")
    def _consistent(self) -> TemplateIn:
        needs_amount = self.kind in ("amount_off", "threshold_off")
        if needs_amount and self.amount_off_fen is None:
            raise ValueError(f"amount_off_fen is required for {self.kind}")
        if self.kind == "amount_off" and self.threshold_fen:
            raise ValueError("amount_off is 无门槛 (no threshold); use threshold_off for 满减")
        if self.kind == "threshold_off" and (self.amount_off_fen or 0) >= self.threshold_fen:
            raise ValueError("threshold_off needs threshold_fen above amount_off_fen (e.g. 满200减20)")
        if self.kind == "percent_off" and self.percent_off is None:
            raise ValueError("percent_off is required for percent_off")
        if self.kind != "percent_off" and (self.percent_off is not None or self.max_discount_fen is not None):
            raise ValueError("percent_off and max_discount_fen only apply to percent_off")
        if not needs_amount and self.amount_off_fen is not None:
            raise ValueError(f"amount_off_fen does not apply to {self.kind}")
        if self.kind == "gift" and not self.gift_name:
            raise ValueError("gift_name is required for a gift coupon")
        fixed = self.valid_from is not None or self.valid_until is not None
        if fixed == (self.valid_days is not None):
            raise ValueError("give either valid_days or fixed dates (valid_until, optionally valid_from)")
        if fixed and self.valid_until is None:
            raise ValueError("fixed validity needs valid_until")
        if self.valid_from and self.valid_until and self.valid_from >= self.valid_until:
            raise ValueError("valid_from must be before valid_until")
        return self


class TemplatePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Annotated[str, Field(max_length=1000)] | None = None
    status: Literal["active", "paused", "archived"] | None = None
    total_stock: Count | None = None
    points_cost: Count | None = None


class TemplateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    kind: str
    amount_off_fen: int | None
    threshold_fen: int
    percent_off: int | None
    max_discount_fen: int | None
    gift_name: str | None
    valid_from: datetime | None
    valid_until: datetime | None
    valid_days: int | None
    total_stock: int | None
    issued_count: int
    per_customer_limit: int | None
    categories: list[str]
    skus: list[str]
    points_cost: int | None
    restore_on_refund: bool
    status: str
    created_at: datetime


class TemplateStatsOut(BaseModel):
    template_id: int
    issued: int
    redeemed: int
    expired: int
    redemption_rate: float = Field(description="redeemed / issued, 0 when nothing was issued")
    gmv_fen: int = Field(description="order amount of the redeemed orders")
    discount_fen: int


class TemplateDetailOut(TemplateOut):
    stats: TemplateStatsOut


class IssueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template_id: StrictInt
    customer_id: StrictInt
    idempotency_key: Key = Field(description="the same key returns the coupon issued the first time")


class BulkIssueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template_id: StrictInt
    idempotency_key: Key
    customer_ids: Annotated[list[StrictInt], Field(max_length=100_000)] | None = None
    segment_id: StrictInt | None = None

    @model_validator(mode="after")
    def _one_audience(self) -> BulkIssueIn:
        if (self.customer_ids is None) == (self.segment_id is None):
            raise ValueError("give customer_ids or segment_id")
        return self


class BulkIssueOut(BaseModel):
    template_id: int
    requested: int
    issued: int
    already_issued: int
    skipped_limit: int
    skipped_stock: int


class CouponOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    template_id: int
    customer_id: int
    state: str
    issued_at: datetime
    valid_from: datetime
    valid_until: datetime
    redeemed_at: datetime | None


class CouponListOut(BaseModel):
    items: list[CouponOut]
    next_cursor: str | None


class OrderLineIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sku: Annotated[str, Field(min_length=1, max_length=100)]
    category: Annotated[str, Field(max_length=100)] = "uncategorised"
    quantity: Annotated[StrictInt, Field(gt=0, le=100_000)] = 1
    unit_price_fen: Fen


class RedeemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, Field(min_length=1, max_length=64)]
    order_id: Annotated[str, Field(min_length=1, max_length=200)]
    order_amount_fen: Fen
    items: Annotated[list[OrderLineIn], Field(max_length=500)] = []
    customer_id: StrictInt | None = Field(None, description="when given, the coupon must belong to this customer")


class RedemptionOut(BaseModel):
    code: str
    template_id: int
    customer_id: int
    order_id: str
    order_amount_fen: int
    discount_fen: int
    payable_fen: int
    gift_name: str | None
    redeemed_at: datetime
