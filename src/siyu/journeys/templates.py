"""Ready-made journeys an operator copies and adapts.

A template names its slots — the message templates, coupon templates and tags of the brand that it
cannot know — and copying fills those given (`{"welcome_message": 12}`); the rest stay empty and the
copy is a draft whose check names each missing one, until the operator picks them in the editor.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from siyu.journeys.errors import TemplateUnknown
from siyu.journeys.service import JourneyDraft, create_journey
from siyu.workspaces.service import WorkspaceContext

ORDER_GOAL_7D = {"event_type": "order_paid", "within_days": 7, "exit": True}


@dataclass(frozen=True)
class Slot:
    name: str
    step_id: str
    field: str
    label: str


@dataclass(frozen=True)
class JourneyTemplate:
    key: str
    name: str
    description: str
    definition: dict[str, Any]
    slots: tuple[Slot, ...]


def _msg(step_id: str, nxt: str | None, name: str) -> dict[str, Any]:
    return {"id": step_id, "type": "send_message", "name": name, "template_id": None, "next": nxt}


TEMPLATES: tuple[JourneyTemplate, ...] = (
    JourneyTemplate(
        "welcome_series", "新客欢迎旅程 New-contact welcome series",
        "Welcome → day 1 useful content → day 3 first-order coupon → day 7 staff follow-up if no order yet.",
        {"trigger": {"type": "event", "event_type": "contact_added"}, "entry": {"mode": "once"},
         "holdout_percent": 10, "goal": {"event_type": "order_paid", "within_days": 14, "exit": True},
         "start": "welcome",
         "steps": [
             _msg("welcome", "day1", "欢迎语"),
             {"id": "day1", "type": "wait", "duration": {"days": 1}, "until_time": "10:00", "next": "content"},
             _msg("content", "day3", "育儿/护肤干货"),
             {"id": "day3", "type": "wait", "duration": {"days": 2}, "until_time": "10:00", "next": "coupon"},
             {"id": "coupon", "type": "issue_coupon", "name": "首单券", "template_id": None, "next": "coupon_note"},
             _msg("coupon_note", "day7", "首单券提醒"),
             {"id": "day7", "type": "wait", "duration": {"days": 4}, "until_time": "10:00", "next": "ordered"},
             {"id": "ordered", "type": "condition", "name": "已下单?",
              "rule": {"kind": "order", "measure": "count", "op": "gte", "value": 1}, "then": None,
              "else": "follow_up"},
             {"id": "follow_up", "type": "staff_task", "title": "新客一对一跟进", "priority": "normal",
              "instructions": "客户加微 7 天仍未下单：了解需求，推荐入门产品。",
              "script": "您好～我是您的专属顾问，最近使用上有什么问题都可以问我哦！",
              "assign": {"to": "owner"}, "sla": {"days": 1}, "remind_before": {"hours": 4}},
         ]},
        (Slot("welcome_message", "welcome", "template_id", "welcome message template"),
         Slot("content_message", "content", "template_id", "day-1 content message template"),
         Slot("first_order_coupon", "coupon", "template_id", "first-order coupon template"),
         Slot("coupon_message", "coupon_note", "template_id", "coupon reminder message template"))),
    JourneyTemplate(
        "replenishment", "复购提醒 Replenishment reminder with a coupon",
        "3 days before the predicted run-out of 奶粉: a reminder with a coupon; a staff call if no re-purchase.",
        {"trigger": {"type": "replenishment", "category": "母婴/奶粉", "days_before": 3, "at": "10:00"},
         "entry": {"mode": "every_time"}, "holdout_percent": 10, "goal": ORDER_GOAL_7D, "start": "coupon",
         "steps": [
             {"id": "coupon", "type": "issue_coupon", "name": "复购券", "template_id": None, "next": "remind"},
             _msg("remind", "wait_order", "快用完了吗?专属券已发放"),
             {"id": "wait_order", "type": "wait", "until_event": {"event_type": "order_paid"},
              "timeout": {"days": 5}, "next": None, "timeout_next": "call"},
             {"id": "call", "type": "staff_task", "title": "复购回访", "priority": "high",
              "instructions": "客户预计已用完，提醒专属券即将到期。", "assign": {"to": "owner"},
              "sla": {"days": 1}},
         ]},
        (Slot("replenish_coupon", "coupon", "template_id", "replenishment coupon template"),
         Slot("remind_message", "remind", "template_id", "reminder message template"))),
    JourneyTemplate(
        "birthday_month", "生日月礼遇 Birthday month gift",
        "On the first day of the birthday month: points and a gift coupon, with a greeting.",
        {"trigger": {"type": "date", "field": "birthday", "match": "month", "at": "09:30"},
         "entry": {"mode": "once_per_period", "period_days": 300}, "holdout_percent": 0,
         "goal": {"event_type": "order_paid", "within_days": 30, "exit": False}, "start": "points",
         "steps": [
             {"id": "points", "type": "award_points", "points": 200, "reason": "生日月礼", "next": "gift"},
             {"id": "gift", "type": "issue_coupon", "name": "生日券", "template_id": None, "next": "greet"},
             _msg("greet", None, "生日祝福"),
         ]},
        (Slot("birthday_coupon", "gift", "template_id", "birthday coupon template"),
         Slot("greeting_message", "greet", "template_id", "birthday greeting message template"))),
    JourneyTemplate(
        "wake_up", "沉睡唤醒 Sleeping-customer wake-up with escalating offer",
        "Customers entering the sleeping segment: a message, then a small coupon, then a bigger one.",
        {"trigger": {"type": "segment_entered", "segment_id": None}, "entry": {"mode": "once_per_period",
                                                                               "period_days": 90},
         "holdout_percent": 10, "goal": {"event_type": "order_paid", "within_days": 21, "exit": True},
         "start": "hello",
         "steps": [
             _msg("hello", "wait1", "好久不见"),
             {"id": "wait1", "type": "wait", "duration": {"days": 3}, "until_time": "19:30", "next": "small"},
             {"id": "small", "type": "issue_coupon", "name": "小额券", "template_id": None, "next": "small_note"},
             _msg("small_note", "wait2", "小额券提醒"),
             {"id": "wait2", "type": "wait", "duration": {"days": 7}, "until_time": "19:30", "next": "big"},
             {"id": "big", "type": "issue_coupon", "name": "大额券", "template_id": None, "next": "big_note"},
             _msg("big_note", None, "大额券提醒"),
         ]},
        (Slot("sleeping_segment", "", "trigger.segment_id", "the sleeping-customers segment"),
         Slot("hello_message", "hello", "template_id", "first wake-up message template"),
         Slot("small_coupon", "small", "template_id", "small coupon template"),
         Slot("small_message", "small_note", "template_id", "small coupon message template"),
         Slot("big_coupon", "big", "template_id", "big coupon template"),
         Slot("big_message", "big_note", "template_id", "big coupon message template"))),
    JourneyTemplate(
        "post_purchase", "购后关怀 Post-purchase care",
        "After an order: usage tips two days later, then a review / 晒单 request a week later.",
        {"trigger": {"type": "event", "event_type": "order_paid"}, "entry": {"mode": "every_time"},
         "holdout_percent": 0, "start": "wait_tips",
         "steps": [
             {"id": "wait_tips", "type": "wait", "duration": {"days": 2}, "until_time": "20:00", "next": "tips"},
             _msg("tips", "wait_review", "使用小贴士"),
             {"id": "wait_review", "type": "wait", "duration": {"days": 5}, "until_time": "20:00", "next": "review"},
             _msg("review", None, "邀请晒单"),
         ]},
        (Slot("tips_message", "tips", "template_id", "usage tips message template"),
         Slot("review_message", "review", "template_id", "review request message template"))),
    JourneyTemplate(
        "high_value_follow_up", "高价值客户一对一 High-value 1-to-1 follow-up",
        "A customer entering the high-value segment gets a task for their owning staff member.",
        {"trigger": {"type": "segment_entered", "segment_id": None}, "entry": {"mode": "once_per_period",
                                                                               "period_days": 30},
         "holdout_percent": 0, "start": "task",
         "steps": [
             {"id": "task", "type": "staff_task", "title": "高价值客户一对一关怀", "priority": "urgent",
              "instructions": "致电或企微 1v1：感谢支持，了解近况，介绍会员权益。", "assign": {"to": "owner"},
              "sla": {"hours": 24}, "remind_before": {"hours": 6}, "done_next": None, "overdue_next": "escalate"},
             {"id": "escalate", "type": "staff_task", "title": "超时未跟进：请今天内完成", "priority": "urgent",
              "assign": {"to": "owner"}, "sla": {"hours": 12}},
         ]},
        (Slot("high_value_segment", "", "trigger.segment_id", "the high-value segment"),)),
)
TEMPLATES_BY_KEY = {t.key: t for t in TEMPLATES}


def get_template(key: str) -> JourneyTemplate:
    template = TEMPLATES_BY_KEY.get(key)
    if template is None:
        raise TemplateUnknown(f"no journey template {key!r}; one of {', '.join(TEMPLATES_BY_KEY)}", field="key")
    return template


def filled(template: JourneyTemplate, values: dict[str, Any]) -> dict[str, Any]:
    definition = copy.deepcopy(template.definition)
    steps = {s["id"]: s for s in definition["steps"]}
    for slot in template.slots:
        if slot.name not in values:
            continue
        if slot.field == "trigger.segment_id":
            definition["trigger"]["segment_id"] = values[slot.name]
        else:
            steps[slot.step_id][slot.field] = values[slot.name]
    return definition


def copy_template(session: Session, ctx: WorkspaceContext, key: str, *, actor: str, name: str | None = None,
                  values: dict[str, Any] | None = None) -> JourneyDraft:
    """A new draft journey from a template, with the given slots filled."""
    template = get_template(key)
    unknown = sorted(set(values or {}) - {s.name for s in template.slots})
    if unknown:
        from siyu.kit.errors import ValidationFailed

        raise ValidationFailed(f"template {key} has no slot {unknown[0]!r}", field=f"values.{unknown[0]}")
    return create_journey(session, ctx, name=name or template.name, definition=filled(template, values or {}),
                          description=template.description, actor=actor, template_key=key)
