"""Coupon templates: creating, changing and reading them, with their stats."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from siyu.audit.service import record_audit
from siyu.coupons import repository
from siyu.coupons.errors import TemplateNotFound
from siyu.coupons.models import CouponTemplate
from siyu.coupons.rules import Offer
from siyu.coupons.schemas import TemplateIn, TemplatePatch
from siyu.kit import clock
from siyu.kit.errors import ValidationFailed
from siyu.workspaces.service import WorkspaceContext


def create_template(session: Session, ctx: WorkspaceContext, data: TemplateIn, *, actor: str) -> CouponTemplate:
    now = clock.now()
    if data.valid_until is not None and data.valid_until <= now:
        raise ValidationFailed("valid_until is in the past", field="valid_until")
    template = CouponTemplate(
        workspace_id=ctx.id, name=data.name, description=data.description, kind=data.kind,
        amount_off_fen=data.amount_off_fen, threshold_fen=data.threshold_fen, percent_off=data.percent_off,
        max_discount_fen=data.max_discount_fen, gift_name=data.gift_name, valid_from=data.valid_from,
        valid_until=data.valid_until, valid_days=data.valid_days, total_stock=data.total_stock, issued_count=0,
        per_customer_limit=data.per_customer_limit, categories=list(data.categories), skus=list(data.skus),
        points_cost=data.points_cost, restore_on_refund=data.restore_on_refund, status="active",
        created_at=now, updated_at=now)
    session.add(template)
    session.flush()
    record_audit(session, ctx.id, actor, "coupon_template.created", "coupon_template", template.id,
                 data.model_dump(mode="json"))
    return template


def update_template(session: Session, ctx: WorkspaceContext, template_id: int, patch: TemplatePatch, *,
                    actor: str) -> CouponTemplate:
    """Name, description, status, stock and points price may change; what a coupon is worth may not
    (coupons already issued carry the template's terms)."""
    template = repository.template(session, ctx.id, template_id, lock=True)
    if template is None:
        raise TemplateNotFound(f"no coupon template {template_id}", field="template_id")
    changes = patch.model_dump(exclude_unset=True)
    if "total_stock" in changes and changes["total_stock"] is not None \
            and changes["total_stock"] < template.issued_count:
        raise ValidationFailed(f"{template.issued_count} coupons were already issued; stock cannot be lower",
                               field="total_stock")
    for name, value in changes.items():
        if value is not None or name in ("total_stock", "points_cost"):
            setattr(template, name, value)
    template.updated_at = clock.now()
    session.flush()
    record_audit(session, ctx.id, actor, "coupon_template.updated", "coupon_template", template.id, changes)
    return template


def get_template(session: Session, workspace_id: int, template_id: int) -> CouponTemplate:
    template = repository.template(session, workspace_id, template_id)
    if template is None:
        raise TemplateNotFound(f"no coupon template {template_id}", field="template_id")
    return template


def list_templates(session: Session, workspace_id: int, status: str | None = None) -> list[CouponTemplate]:
    return repository.templates(session, workspace_id, status)


@dataclass(frozen=True)
class TemplateStats:
    template_id: int
    issued: int
    redeemed: int
    expired: int
    gmv_fen: int
    discount_fen: int

    @property
    def redemption_rate(self) -> float:
        return round(self.redeemed / self.issued, 4) if self.issued else 0.0


def template_stats(session: Session, workspace_id: int, template_ids: list[int]) -> dict[int, TemplateStats]:
    rows = repository.stats(session, workspace_id, template_ids)
    return {tid: TemplateStats(tid, r.issued, r.redeemed, r.expired, r.gmv_fen, r.discount_fen)
            for tid, r in rows.items()}


def offer_of(template: CouponTemplate) -> Offer:
    return Offer(kind=template.kind, amount_off_fen=template.amount_off_fen, threshold_fen=template.threshold_fen,
                 percent_off=template.percent_off, max_discount_fen=template.max_discount_fen,
                 categories=tuple(template.categories or ()), skus=tuple(template.skus or ()))
