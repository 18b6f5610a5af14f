"""Preset auto tags every brand starts from; installing them twice changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.tags.models import Tag, TagGroup
from siyu.tags.service import create_group, create_tag
from siyu.workspaces.service import WorkspaceContext


@dataclass(frozen=True)
class Preset:
    key: str
    name: str
    group: str
    description: str
    rule: dict[str, Any]


PRESETS = (
    Preset("high_average_order", "高客单价", "客单价", "average order of ¥500 or more",
           {"kind": "order", "measure": "average_order_fen", "op": "gte", "value": 50_000}),
    Preset("baby_category", "母婴品类偏好", "品类偏好", "two or more orders with a 母婴 item in 180 days",
           {"kind": "bought", "category": "母婴", "window": {"last_days": 180}, "op": "gte", "value": 2}),
    Preset("sleeping", "沉睡客户", "生命周期", "ordered before, but not in the last 90 days",
           {"kind": "order", "measure": "days_since_last_order", "op": "gte", "value": 90}),
    Preset("new_customer", "新客", "生命周期", "first order within the last 30 days",
           {"kind": "order", "measure": "days_since_first_order", "op": "lte", "value": 30}),
)


def install_presets(session: Session, ctx: WorkspaceContext, actor: str) -> list[Tag]:
    """Create the preset groups and auto tags that are missing; returns all preset tags."""
    installed = {t.preset: t for t in session.scalars(select(Tag).where(Tag.workspace_id == ctx.id,
                                                                        Tag.preset.is_not(None)))}
    groups = {g.name: g for g in session.scalars(select(TagGroup).where(TagGroup.workspace_id == ctx.id))}
    taken = set(session.scalars(select(Tag.name).where(Tag.workspace_id == ctx.id)))
    for preset in PRESETS:
        if preset.key in installed:
            continue
        if preset.group not in groups:
            groups[preset.group] = create_group(session, ctx, preset.group)
        name = preset.name if preset.name not in taken else f"{preset.name}（预设）"
        installed[preset.key] = create_tag(session, ctx, name=name, actor=actor, group_id=groups[preset.group].id,
                                           description=preset.description, rule=preset.rule, preset=preset.key)
    return [installed[p.key] for p in PRESETS]
