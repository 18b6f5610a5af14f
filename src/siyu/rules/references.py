"""What a rule refers to — tags, segments, layers — and the checks that need the store: every
referenced tag and segment exists in the workspace, and no rule reaches itself through others.

Rule-bound sets are auto tags and dynamic segments; each is a node `("tag", id)` or
`("segment", id)`. An edge goes from a node to every rule-bound node its rule refers to, so the
graph is also the order in which they refresh (dependencies first)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.coupons.models import CouponTemplate
from siyu.loyalty.models import Tier
from siyu.rules.tree import (
    CouponCondition,
    LifecycleCondition,
    RfmCondition,
    Rule,
    RuleInvalid,
    RuleIssue,
    SegmentCondition,
    TagCondition,
    TierCondition,
    child_path,
    conditions,
    parse_rule,
)
from siyu.segments.models import DYNAMIC, Segment
from siyu.tags.models import AUTO, Tag

NodeKey = tuple[str, int]


def referenced(rule: Rule) -> set[NodeKey]:
    """The tags and segments a rule refers to."""
    found: set[NodeKey] = set()
    for _, condition in conditions(rule):
        if isinstance(condition, TagCondition):
            found.update(("tag", tag_id) for tag_id in condition.tag_ids)
        elif isinstance(condition, SegmentCondition):
            found.add(("segment", condition.segment_id))
    return found


def uses_layers(rule: Rule) -> set[str]:
    """Which workspace-wide layers ("lifecycle", "rfm") the rule reads."""
    return {"lifecycle" if isinstance(c, LifecycleCondition) else "rfm"
            for _, c in conditions(rule) if isinstance(c, LifecycleCondition | RfmCondition)}


def rule_graph(session: Session, workspace_id: int) -> tuple[dict[NodeKey, set[NodeKey]], dict[NodeKey, str]]:
    """Edges between the workspace's rule-bound sets, and the display name of every tag and segment."""
    names: dict[NodeKey, str] = {}
    edges: dict[NodeKey, set[NodeKey]] = {}
    for tag_id, name, kind, rule in session.execute(select(Tag.id, Tag.name, Tag.kind, Tag.rule)
                                                    .where(Tag.workspace_id == workspace_id)):
        names[("tag", tag_id)] = name
        if kind == AUTO and rule:
            edges[("tag", tag_id)] = referenced(parse_rule(rule))
    for segment_id, name, kind, rule in session.execute(
            select(Segment.id, Segment.name, Segment.kind, Segment.rule).where(Segment.workspace_id == workspace_id)):
        names[("segment", segment_id)] = name
        if kind == DYNAMIC and rule:
            edges[("segment", segment_id)] = referenced(parse_rule(rule))
    return edges, names


def check_rule(session: Session, workspace_id: int, raw: Any, owner: NodeKey | None) -> Rule:
    """Parse a rule and check it against the store. `owner` is the tag or segment it belongs to
    (None for a new one or a preview)."""
    rule = parse_rule(raw)
    edges, names = rule_graph(session, workspace_id)
    issues: list[RuleIssue] = []
    for path, condition in conditions(rule):
        if isinstance(condition, TagCondition):
            for i, tag_id in enumerate(condition.tag_ids):
                if ("tag", tag_id) not in names:
                    issues.append(RuleIssue(child_path(child_path(path, "tags"), i),
                                            f"no tag {tag_id} in this workspace"))
        elif isinstance(condition, SegmentCondition) and ("segment", condition.segment_id) not in names:
            issues.append(RuleIssue(child_path(path, "segment_id"), f"no segment {condition.segment_id} "
                                                                    "in this workspace"))
    issues += _loyalty_issues(session, workspace_id, rule)
    if issues:
        raise RuleInvalid(issues)
    if owner is not None:
        cycle = _cycle_through(owner, referenced(rule), edges)
        if cycle:
            label = " → ".join(f"{kind} {names.get((kind, i), i)!r}" for kind, i in [owner, *cycle])
            path = _path_of_reference(rule, cycle[0])
            raise RuleInvalid([RuleIssue(path, f"circular reference: {label}")])
    return rule


def _loyalty_issues(session: Session, workspace_id: int, rule: Rule) -> list[RuleIssue]:
    """Tier codes and coupon templates named by a rule must exist in the workspace."""
    issues: list[RuleIssue] = []
    tier_codes: set[str] | None = None
    for path, condition in conditions(rule):
        if isinstance(condition, TierCondition):
            if tier_codes is None:
                tier_codes = set(session.scalars(select(Tier.code).where(Tier.workspace_id == workspace_id)))
            issues += [RuleIssue(child_path(child_path(path, "tiers"), i), f"no tier {code!r} in this workspace")
                       for i, code in enumerate(condition.tiers) if code not in tier_codes]
        elif isinstance(condition, CouponCondition) and condition.template_id is not None and session.scalar(
                select(CouponTemplate.id).where(CouponTemplate.workspace_id == workspace_id,
                                                CouponTemplate.id == condition.template_id)) is None:
            issues.append(RuleIssue(child_path(path, "template_id"),
                                    f"no coupon template {condition.template_id} in this workspace"))
    return issues


def _cycle_through(owner: NodeKey, deps: set[NodeKey], edges: Mapping[NodeKey, Iterable[NodeKey]]
                   ) -> list[NodeKey] | None:
    """A path from one of `deps` back to `owner` (with the owner's edges replaced by `deps`)."""
    graph = {**edges, owner: deps}
    for start in sorted(deps):
        stack: list[tuple[NodeKey, list[NodeKey]]] = [(start, [start])]
        seen: set[NodeKey] = set()
        while stack:
            node, trail = stack.pop()
            if node == owner:
                return trail
            if node in seen:
                continue
            seen.add(node)
            stack.extend((nxt, [*trail, nxt]) for nxt in sorted(graph.get(node, ())))
    return None


def _path_of_reference(rule: Rule, target: NodeKey) -> str:
    for path, condition in conditions(rule):
        if isinstance(condition, TagCondition) and target[0] == "tag" and target[1] in condition.tag_ids:
            return child_path(child_path(path, "tags"), condition.tag_ids.index(target[1]))
        if isinstance(condition, SegmentCondition) and target == ("segment", condition.segment_id):
            return child_path(path, "segment_id")
    return ""


def users_of(session: Session, workspace_id: int, node: NodeKey) -> list[str]:
    """Names of the auto tags and segments whose rules refer to `node` ("tag 新客", "segment 复购")."""
    edges, names = rule_graph(session, workspace_id)
    return sorted(f"{kind} {names[(kind, i)]}" for (kind, i), deps in edges.items() if node in deps)


def dependency_order(edges: Mapping[NodeKey, Iterable[NodeKey]], nodes: Iterable[NodeKey]) -> list[list[NodeKey]]:
    """`nodes` in levels: every node comes after the rule-bound nodes it refers to. Cycles cannot be
    saved (see `check_rule`); should one exist anyway, its nodes come last, in one level."""
    wanted = set(nodes)
    remaining = {n: {d for d in edges.get(n, ()) if d in wanted} for n in wanted}
    levels: list[list[NodeKey]] = []
    while remaining:
        ready = sorted(n for n, deps in remaining.items() if not deps)
        if not ready:
            levels.append(sorted(remaining))
            break
        levels.append(ready)
        for n in ready:
            del remaining[n]
        for deps in remaining.values():
            deps.difference_update(ready)
    return levels
