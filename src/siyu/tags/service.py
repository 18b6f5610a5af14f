"""Tags: groups, manual tagging by people (one customer or in bulk), auto tags bound to a rule, and the
history of every tag going on or coming off a customer.

Auto tags are evaluated by the segments domain's refresh engine (the same engine as dynamic
segments), which writes their changes through `apply_rule_changes`. This module tells the engine
about new or changed rules by publishing `tag_rule_changed`, and about manual changes (which other
rules may read) by publishing `customer_tags_changed`.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from siyu.audit.service import record_audit
from siyu.customers.identities import CUSTOM_TYPE_PATTERN, STANDARD_IDENTITY_TYPES
from siyu.customers.models import Customer
from siyu.customers.service import CustomerPage, customers_by_identities, list_customers, resolve_customer_id
from siyu.db.base import table_of
from siyu.domains import domain_modules
from siyu.jobs.service import publish
from siyu.kit import clock
from siyu.kit.errors import ValidationFailed
from siyu.rules.references import check_rule, users_of
from siyu.rules.tree import to_json
from siyu.tags.errors import (
    AutoTagIsRuleBound,
    NotAnAutoTag,
    TagGroupNameTaken,
    TagGroupNotFound,
    TagInUse,
    TagNameTaken,
    TagNotFound,
)
from siyu.tags.models import AUTO, MANUAL, CustomerTag, Tag, TagGroup, TagHistory
from siyu.workspaces.service import WorkspaceContext

CHUNK = 500
PUBLISH_CHUNK = 1000
EXTERNAL_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


# -- groups ------------------------------------------------------------------------------------

def create_group(session: Session, ctx: WorkspaceContext, name: str, description: str = "",
                 position: int = 0) -> TagGroup:
    name = _name(name)
    if session.scalar(select(TagGroup.id).where(TagGroup.workspace_id == ctx.id, TagGroup.name == name)):
        raise TagGroupNameTaken(f"a tag group named {name!r} exists", field="name")
    group = TagGroup(workspace_id=ctx.id, name=name, description=description, position=position,
                     created_at=clock.now())
    session.add(group)
    session.flush()
    return group


def list_groups(session: Session, workspace_id: int) -> list[TagGroup]:
    return list(session.scalars(select(TagGroup).where(TagGroup.workspace_id == workspace_id)
                                .order_by(TagGroup.position, TagGroup.id)))


def get_group(session: Session, workspace_id: int, group_id: int) -> TagGroup:
    group = session.scalar(select(TagGroup).where(TagGroup.workspace_id == workspace_id, TagGroup.id == group_id))
    if group is None:
        raise TagGroupNotFound(f"no tag group {group_id}", field="group_id")
    return group


def update_group(session: Session, ctx: WorkspaceContext, group_id: int, *, name: str | None = None,
                 description: str | None = None, position: int | None = None) -> TagGroup:
    group = get_group(session, ctx.id, group_id)
    if name is not None and _name(name) != group.name:
        if session.scalar(select(TagGroup.id).where(TagGroup.workspace_id == ctx.id, TagGroup.name == _name(name))):
            raise TagGroupNameTaken(f"a tag group named {name!r} exists", field="name")
        group.name = _name(name)
    if description is not None:
        group.description = description
    if position is not None:
        group.position = position
    session.flush()
    return group


def delete_group(session: Session, ctx: WorkspaceContext, group_id: int) -> None:
    """Delete a group; its tags stay, ungrouped."""
    group = get_group(session, ctx.id, group_id)
    session.execute(update(Tag).where(Tag.workspace_id == ctx.id, Tag.group_id == group.id).values(group_id=None))
    session.delete(group)
    session.flush()


# -- tags --------------------------------------------------------------------------------------

def create_tag(session: Session, ctx: WorkspaceContext, *, name: str, actor: str, group_id: int | None = None,
               description: str = "", rule: Any = None, external_key: str | None = None,
               refresh_minutes: int = 60, preset: str | None = None) -> Tag:
    """A manual tag, or (with a rule) an auto tag, which the worker then evaluates for everyone."""
    name = _name(name)
    if session.scalar(select(Tag.id).where(Tag.workspace_id == ctx.id, Tag.name == name)):
        raise TagNameTaken(f"a tag named {name!r} exists", field="name")
    if group_id is not None:
        get_group(session, ctx.id, group_id)
    key = external_key or f"tag_{secrets.token_hex(8)}"
    if not EXTERNAL_KEY.match(key):
        raise ValidationFailed("external_key is 1-64 letters, digits, _ or -", field="external_key")
    if session.scalar(select(Tag.id).where(Tag.workspace_id == ctx.id, Tag.external_key == key)):
        raise TagNameTaken(f"external_key {key!r} is used by another tag", field="external_key")
    stored_rule = to_json(check_rule(session, ctx.id, rule, owner=None)) if rule is not None else None
    now = clock.now()
    tag = Tag(workspace_id=ctx.id, group_id=group_id, name=name, external_key=key, description=description,
              kind=AUTO if rule is not None else MANUAL, rule=stored_rule, rule_version=1 if rule is not None else 0,
              refresh_minutes=_refresh_minutes(refresh_minutes), preset=preset, size=0, created_by=actor,
              created_at=now, updated_at=now)
    session.add(tag)
    session.flush()
    record_audit(session, ctx.id, actor, "tag.created", "tag", tag.id, {"name": name, "kind": tag.kind})
    if tag.kind == AUTO:
        _publish_rule_changed(session, ctx, tag)
    return tag


def update_tag(session: Session, ctx: WorkspaceContext, tag_id: int, *, actor: str, name: str | None = None,
               group_id: int | None = None, clear_group: bool = False, description: str | None = None,
               rule: Any = None, refresh_minutes: int | None = None) -> Tag:
    tag = get_tag(session, ctx.id, tag_id)
    if name is not None and _name(name) != tag.name:
        if session.scalar(select(Tag.id).where(Tag.workspace_id == ctx.id, Tag.name == _name(name))):
            raise TagNameTaken(f"a tag named {name!r} exists", field="name")
        tag.name = _name(name)
    if clear_group:
        tag.group_id = None
    elif group_id is not None:
        tag.group_id = get_group(session, ctx.id, group_id).id
    if description is not None:
        tag.description = description
    if refresh_minutes is not None:
        tag.refresh_minutes = _refresh_minutes(refresh_minutes)
    if rule is not None:
        if tag.kind != AUTO:
            raise NotAnAutoTag("a manual tag has no rule; create an auto tag instead", field="rule")
        stored = to_json(check_rule(session, ctx.id, rule, owner=("tag", tag.id)))
        if stored != tag.rule:
            tag.rule, tag.rule_version = stored, tag.rule_version + 1
            _publish_rule_changed(session, ctx, tag)
    tag.updated_at = clock.now()
    session.flush()
    record_audit(session, ctx.id, actor, "tag.updated", "tag", tag.id, {"name": tag.name})
    return tag


def delete_tag(session: Session, ctx: WorkspaceContext, tag_id: int, actor: str) -> None:
    """Delete a tag — refused, naming them, while rules or journeys use it."""
    tag = get_tag(session, ctx.id, tag_id)
    users = tag_users(session, ctx.id, tag.id)
    if users:
        raise TagInUse(f"tag {tag.name!r} is used by {', '.join(users)}", field="tag_id", details={"used_by": users})
    record_audit(session, ctx.id, actor, "tag.deleted", "tag", tag.id, {"name": tag.name, "size": tag.size})
    session.delete(tag)
    session.flush()


def tag_users(session: Session, workspace_id: int, tag_id: int) -> list[str]:
    """Who uses a tag: rules of auto tags and segments, and any domain exposing
    `siyu.<domain>.references.tag_users(session, workspace_id, tag_id)` (journeys)."""
    users = users_of(session, workspace_id, ("tag", tag_id))
    for module in domain_modules("references"):
        finder = getattr(module, "tag_users", None)
        if finder is not None:
            users.extend(finder(session, workspace_id, tag_id))
    return users


def get_tag(session: Session, workspace_id: int, tag_id: int) -> Tag:
    tag = session.scalar(select(Tag).where(Tag.workspace_id == workspace_id, Tag.id == tag_id))
    if tag is None:
        raise TagNotFound(f"no tag {tag_id}", field="tag_id")
    return tag


def list_tags(session: Session, workspace_id: int, *, group_id: int | None = None, kind: str | None = None
              ) -> list[Tag]:
    stmt = select(Tag).where(Tag.workspace_id == workspace_id)
    if group_id is not None:
        stmt = stmt.where(Tag.group_id == group_id)
    if kind is not None:
        stmt = stmt.where(Tag.kind == kind)
    return list(session.scalars(stmt.order_by(Tag.group_id, Tag.name)))


def _name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned or len(cleaned) > 100:
        raise ValidationFailed("name must be 1-100 characters", field="name")
    return cleaned


def _refresh_minutes(minutes: int) -> int:
    if not 5 <= minutes <= 7 * 24 * 60:
        raise ValidationFailed("refresh_minutes must be between 5 and 10080", field="refresh_minutes")
    return minutes


def _publish_rule_changed(session: Session, ctx: WorkspaceContext, tag: Tag) -> None:
    publish(session, "tag_rule_changed", {"workspace_id": ctx.id, "tag_id": tag.id},
            workspace_id=ctx.id, key=f"tag:{tag.id}:v{tag.rule_version}")


# -- tagging by people ---------------------------------------------------------------------------

@dataclass
class TaggingResult:
    changed: int = 0
    unchanged: int = 0
    unknown: list[str] = field(default_factory=list)  # ids or identities that match no customer

    def as_dict(self) -> dict[str, Any]:
        return {"changed": self.changed, "unchanged": self.unchanged, "unknown": self.unknown[:100],
                "unknown_count": len(self.unknown)}


def resolve_customers(session: Session, workspace_id: int, *, customer_ids: Iterable[int] = (),
                      identities: Iterable[tuple[str, str]] = ()) -> tuple[list[int], list[str]]:
    """Customers named by id (merged ids follow to their survivor) or by identity; and what matched none."""
    found: set[int] = set()
    unknown: list[str] = []
    ids = sorted(set(customer_ids))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        rows = {cid: merged for cid, merged in session.execute(select(Customer.id, Customer.merged_into_id).where(
            Customer.workspace_id == workspace_id, Customer.id.in_(chunk)))}
        for customer_id in chunk:
            if customer_id in rows:
                found.add(rows[customer_id] or customer_id)
            else:
                unknown.append(str(customer_id))
    pairs = list(identities)
    if pairs:
        matched = customers_by_identities(session, workspace_id, pairs)
        for pair in pairs:
            if pair in matched:
                found.add(matched[pair])
            else:
                unknown.append(f"{pair[0]}:{pair[1]}")
    return sorted(found), unknown


def tag_customers(session: Session, ctx: WorkspaceContext, tag_id: int, *, actor: str,
                  customer_ids: Iterable[int] = (), identities: Iterable[tuple[str, str]] = ()) -> TaggingResult:
    """Put a manual tag on customers (by id or identity), recording who and when."""
    tag = _manual(get_tag(session, ctx.id, tag_id))
    targets, unknown = resolve_customers(session, ctx.id, customer_ids=customer_ids, identities=identities)
    added = add_tag_rows(session, ctx, tag, targets, source=MANUAL, actor=actor)
    _publish_tags_changed(session, ctx, tag, added)
    return TaggingResult(len(added), len(targets) - len(added), unknown)


def untag_customers(session: Session, ctx: WorkspaceContext, tag_id: int, *, actor: str,
                    customer_ids: Iterable[int] = (), identities: Iterable[tuple[str, str]] = ()) -> TaggingResult:
    tag = _manual(get_tag(session, ctx.id, tag_id))
    targets, unknown = resolve_customers(session, ctx.id, customer_ids=customer_ids, identities=identities)
    removed = remove_tag_rows(session, ctx, tag, targets, source=MANUAL, actor=actor)
    _publish_tags_changed(session, ctx, tag, removed)
    return TaggingResult(len(removed), len(targets) - len(removed), unknown)


def _manual(tag: Tag) -> Tag:
    if tag.kind == AUTO:
        raise AutoTagIsRuleBound(f"tag {tag.name!r} is kept by its rule and cannot be put on or taken off by hand",
                                 field="tag_id")
    return tag


def _publish_tags_changed(session: Session, ctx: WorkspaceContext, tag: Tag, customer_ids: list[int]) -> None:
    for start in range(0, len(customer_ids), PUBLISH_CHUNK):
        publish(session, "customer_tags_changed", {"workspace_id": ctx.id, "tag_id": tag.id,
                                                   "customer_ids": customer_ids[start:start + PUBLISH_CHUNK]},
                workspace_id=ctx.id)


# -- writing tag rows (people and rules) ---------------------------------------------------------

def add_tag_rows(session: Session, ctx: WorkspaceContext, tag: Tag, customer_ids: list[int], *, source: str,
                 actor: str, at: datetime | None = None) -> list[int]:
    """Put `tag` on the customers not wearing it yet; returns those. History and size follow."""
    at = at or clock.now()
    added = [cid for _, cid in _insert_rows(session, ctx, [(tag.id, cid) for cid in customer_ids], source,
                                            lambda _: actor, at)]
    _history(session, ctx, {tag.id: tag.name}, [(tag.id, cid) for cid in added], "added", source, lambda _: actor, at)
    return sorted(added)


def remove_tag_rows(session: Session, ctx: WorkspaceContext, tag: Tag, customer_ids: list[int], *, source: str,
                    actor: str, at: datetime | None = None) -> list[int]:
    """Take `tag` off those customers wearing it; returns those. History and size follow."""
    at = at or clock.now()
    removed = [cid for _, cid in _delete_rows(session, [(tag.id, cid) for cid in customer_ids])]
    _history(session, ctx, {tag.id: tag.name}, [(tag.id, cid) for cid in removed], "removed", source,
             lambda _: actor, at)
    return sorted(removed)


def _insert_rows(session: Session, ctx: WorkspaceContext, pairs: list[tuple[int, int]], source: str,
                 actor_of: Callable[[int], str], at: datetime) -> list[tuple[int, int]]:
    insert_fn = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    added: list[tuple[int, int]] = []
    for start in range(0, len(pairs), CHUNK * 4):
        rows = [{"tag_id": tag_id, "customer_id": cid, "workspace_id": ctx.id, "source": source,
                 "added_by": actor_of(tag_id), "added_at": at} for tag_id, cid in pairs[start:start + CHUNK * 4]]
        stmt = insert_fn(CustomerTag).on_conflict_do_nothing().returning(CustomerTag.tag_id, CustomerTag.customer_id)
        added.extend((int(t), int(c)) for t, c in session.execute(stmt, rows))
    return added


def _delete_rows(session: Session, pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    removed: list[tuple[int, int]] = []
    for start in range(0, len(pairs), CHUNK):
        chunk = pairs[start:start + CHUNK]
        removed.extend((int(t), int(c)) for t, c in session.execute(
            delete(CustomerTag).where(tuple_(CustomerTag.tag_id, CustomerTag.customer_id).in_(chunk))
            .returning(CustomerTag.tag_id, CustomerTag.customer_id)))
    return removed


def _history(session: Session, ctx: WorkspaceContext, names: dict[int, str], pairs: list[tuple[int, int]],
             action: str, source: str, actor_of: Callable[[int], str], at: datetime) -> None:
    if not pairs:
        return
    session.execute(insert(TagHistory), [
        {"workspace_id": ctx.id, "tag_id": tag_id, "tag_name": names[tag_id], "customer_id": cid, "action": action,
         "source": source, "actor": actor_of(tag_id), "at": at} for tag_id, cid in pairs])
    deltas: dict[int, int] = {}
    for tag_id, _ in pairs:
        deltas[tag_id] = deltas.get(tag_id, 0) + (1 if action == "added" else -1)
    tags = table_of(Tag)
    session.execute(update(tags).where(tags.c.id == bindparam("tid")).values(size=tags.c.size + bindparam("delta")),
                    [{"tid": tag_id, "delta": delta} for tag_id, delta in sorted(deltas.items())])


@dataclass
class RuleChange:
    """What an auto tag's rule now says about some customers."""

    tag_id: int
    tag_name: str
    entered: list[int]
    exited: list[int]


def apply_rule_changes(session: Session, ctx: WorkspaceContext, changes: list[RuleChange], at: datetime
                       ) -> tuple[int, int]:
    """The refresh engine's write for any number of auto tags at once: rows, history and sizes, in a
    handful of statements. Returns (tags put on, tags taken off)."""
    names = {c.tag_id: c.tag_name for c in changes}

    def rule_actor(tag_id: int) -> str:
        return f"rule:tag:{tag_id}"

    added = _insert_rows(session, ctx, [(c.tag_id, cid) for c in changes for cid in c.entered], "rule", rule_actor,
                         at)
    removed = _delete_rows(session, [(c.tag_id, cid) for c in changes for cid in c.exited])
    _history(session, ctx, names, sorted(added), "added", "rule", rule_actor, at)
    _history(session, ctx, names, sorted(removed), "removed", "rule", rule_actor, at)
    return len(added), len(removed)


def move_tags_on_merge(session: Session, ctx: WorkspaceContext, survivor_id: int, absorbed_id: int) -> None:
    """A merge: the absorbed profile's manual tags go to the survivor; its auto tags are dropped (the
    survivor is re-evaluated). History records both."""
    rows = session.execute(select(Tag, CustomerTag.source).join(CustomerTag, CustomerTag.tag_id == Tag.id)
                           .where(Tag.workspace_id == ctx.id, CustomerTag.customer_id == absorbed_id)).all()
    at = clock.now()
    for tag, source in rows:
        remove_tag_rows(session, ctx, tag, [absorbed_id], source="merge", actor=f"merge:{survivor_id}", at=at)
        if source == MANUAL:
            add_tag_rows(session, ctx, tag, [survivor_id], source=MANUAL, actor=f"merge:{absorbed_id}", at=at)


# -- reading ---------------------------------------------------------------------------------------

def tags_of(session: Session, workspace_id: int, customer_id: int) -> list[tuple[Tag, CustomerTag]]:
    """The tags a customer wears now (an absorbed id gives its survivor's)."""
    survivor = resolve_customer_id(session, workspace_id, customer_id)
    rows = session.execute(select(Tag, CustomerTag).join(CustomerTag, CustomerTag.tag_id == Tag.id)
                           .where(Tag.workspace_id == workspace_id, CustomerTag.customer_id == survivor)
                           .order_by(Tag.group_id, Tag.name))
    return [(tag, assignment) for tag, assignment in rows]


def tag_history_of(session: Session, workspace_id: int, customer_id: int, limit: int = 100) -> list[TagHistory]:
    """Newest first: every tag that went on or came off the customer, by whom or which rule."""
    survivor = resolve_customer_id(session, workspace_id, customer_id)
    return list(session.scalars(select(TagHistory).where(TagHistory.workspace_id == workspace_id,
                                                         TagHistory.customer_id == survivor)
                                .order_by(TagHistory.id.desc()).limit(limit)))


def tagged_customers(session: Session, workspace_id: int, tag_id: int, cursor: str | None = None,
                     limit: int = 50) -> CustomerPage:
    get_tag(session, workspace_id, tag_id)
    return list_customers(session, workspace_id, customer_ids=tagged_customer_ids(workspace_id, tag_id),
                          cursor=cursor, limit=limit)


def tagged_customer_ids(workspace_id: int, tag_id: int) -> Any:
    """A SELECT of the customers wearing a tag, for `customers.service.list_customers(customer_ids=...)`."""
    return select(CustomerTag.customer_id).where(CustomerTag.workspace_id == workspace_id,
                                                 CustomerTag.tag_id == tag_id)


def count_tagged(session: Session, workspace_id: int, tag_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(CustomerTag).where(
        CustomerTag.workspace_id == workspace_id, CustomerTag.tag_id == tag_id)) or 0)


# -- shared by tags and segments ---------------------------------------------------------------------

def freshness(target: Any, now: datetime | None = None) -> str:
    """Of an auto tag or dynamic segment: pending (never refreshed), failed (the last refresh failed),
    stale (overdue: twice its interval and ten minutes), or fresh. Manual tags: "manual"."""
    if getattr(target, "kind", AUTO) == MANUAL:
        return "manual"
    if target.last_refresh_status == "failed":
        return "failed"
    if target.last_refreshed_at is None:
        return "pending"
    overdue = timedelta(minutes=2 * target.refresh_minutes + 10)
    return "stale" if (now or clock.now()) - target.last_refreshed_at > overdue else "fresh"


def parse_customer_csv(text: str) -> tuple[list[int], list[tuple[str, str]]]:
    """Customers named in a CSV: a `customer_id` column, `type` + `value` columns, or columns named
    after identity types (`phone`, `wechat_unionid`, ...). Blank cells are skipped."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = [c.strip() for c in (reader.fieldnames or [])]
    identity_columns = [c for c in columns if c in STANDARD_IDENTITY_TYPES or CUSTOM_TYPE_PATTERN.match(c)]
    identity_columns = [c for c in identity_columns if c not in ("customer_id", "type", "value", "name")]
    if "customer_id" not in columns and not ("type" in columns and "value" in columns) and not identity_columns:
        raise ValidationFailed("the CSV needs a customer_id column, type and value columns, or identity type "
                               "columns such as phone", field="file")
    ids: list[int] = []
    pairs: list[tuple[str, str]] = []
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if isinstance(v, str)}
        if row.get("customer_id"):
            if not row["customer_id"].isdigit():
                raise ValidationFailed(f"line {line}: customer_id {row['customer_id']!r} is not a number",
                                       field="file")
            ids.append(int(row["customer_id"]))
        if row.get("type") and row.get("value"):
            pairs.append((row["type"], row["value"]))
        pairs.extend((column, row[column]) for column in identity_columns if row.get(column))
    return ids, pairs
