"""Customer profiles: reading, profile updates from traits, merges and weak-link decisions."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, and_, func, literal, or_, select, update
from sqlalchemy.orm import Session

from siyu.audit.service import record_audit
from siyu.customers.errors import CustomerNotFound, LinkAlreadyDecided, LinkNotFound
from siyu.customers.identities import IdentityKey, normalise_value
from siyu.customers.models import Customer, CustomerMerge, Identity, IdentityLink
from siyu.db.bulk import Bulk
from siyu.db.keyed import restrict
from siyu.kit import clock
from siyu.kit.errors import ValidationFailed
from siyu.kit.pagination import decode_cursor, encode_cursor
from siyu.kit.timefmt import zone
from siyu.workspaces.service import WorkspaceContext

PROFILE_COLUMNS = ("name", "gender", "birthday", "phone", "email", "city", "province", "acquisition_channel")
MAX_PAGE = 200


def profile_from_traits(traits: list[tuple[datetime, dict[str, Any]]]) -> tuple[dict[str, Any], datetime | None]:
    """Fold traits oldest first so newer values win; returns column values and the newest time."""
    fields: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    newest: datetime | None = None
    for at, values in sorted(traits, key=lambda t: t[0]):
        newest = at
        for key, value in values.items():
            if key == "attributes":
                attributes.update(value)
            else:
                fields[key] = value
    if attributes:
        fields["attributes"] = attributes
    return fields, newest


def apply_traits(session: Session, workspace_id: int, customer_id: int, values: dict[str, Any],
                 occurred_at: datetime) -> bool:
    """Apply an event's traits: newer events overwrite, older ones only fill empty fields."""
    customer = session.get(Customer, customer_id)
    if customer is None or customer.workspace_id != workspace_id:
        return False
    newer = customer.profile_updated_at is None or occurred_at >= customer.profile_updated_at
    changed = False
    for key, value in values.items():
        if key == "attributes":
            merged = dict(customer.attributes or {})
            for attr, attr_value in value.items():
                if (newer or attr not in merged) and merged.get(attr) != attr_value:
                    merged[attr] = attr_value
                    changed = True
            customer.attributes = merged
        elif (newer or getattr(customer, key) in (None, "")) and getattr(customer, key) != value:
            setattr(customer, key, value)
            changed = True
    if newer:
        customer.profile_updated_at = occurred_at
    if changed:
        customer.updated_at = clock.now()
    return changed


def widen_seen(session: Session, workspace_id: int, spans: dict[int, tuple[datetime, datetime]]) -> None:
    """Move first_seen_at earlier and last_seen_at later where events show the customer then."""
    bulk = Bulk(session)
    bulk.run(f"UPDATE customers SET first_seen_at = {bulk.least('first_seen_at', '?')}, "
             f"last_seen_at = {bulk.greatest('last_seen_at', '?')} WHERE id = ? AND workspace_id = ?",
             [(bulk.ts(first), bulk.ts(first), bulk.ts(last), bulk.ts(last), cid, workspace_id)
              for cid, (first, last) in sorted(spans.items())])


# -- reading -----------------------------------------------------------------------------------

def resolve_customer_id(session: Session, workspace_id: int, customer_id: int) -> int:
    """Follow merges: an absorbed id keeps resolving to its survivor."""
    row = session.execute(select(Customer.id, Customer.merged_into_id)
                          .where(Customer.id == customer_id, Customer.workspace_id == workspace_id)).first()
    if row is None:
        raise CustomerNotFound(f"no customer {customer_id}", field="customer_id")
    return int(row.merged_into_id or row.id)


def get_customer(session: Session, workspace_id: int, customer_id: int) -> Customer:
    survivor_id = resolve_customer_id(session, workspace_id, customer_id)
    customer = session.get(Customer, survivor_id)
    assert customer is not None
    return customer


def customer_identities(session: Session, workspace_id: int, customer_id: int) -> list[Identity]:
    return list(session.scalars(select(Identity).where(Identity.workspace_id == workspace_id,
                                                       Identity.customer_id == customer_id)
                                .order_by(Identity.type, Identity.id)))


def find_by_identity(session: Session, workspace_id: int, identity_type: str, value: str,
                     namespace: str = "") -> Customer | None:
    try:
        normalised = normalise_value(identity_type, value)
    except ValidationFailed as exc:
        exc.field = identity_type
        raise
    key = IdentityKey(identity_type, namespace, normalised)
    customer_id = session.scalar(select(Identity.customer_id).where(
        Identity.workspace_id == workspace_id, Identity.type == key.type, Identity.namespace == key.namespace,
        Identity.value == key.value))
    return session.get(Customer, customer_id) if customer_id is not None else None


@dataclass
class CustomerPage:
    items: list[Customer]
    next_cursor: str | None


def list_customers(session: Session, workspace_id: int, *, query: str | None = None,
                   identity_type: str | None = None, identity_value: str | None = None,
                   phone: str | None = None, customer_ids: Select[Any] | None = None,
                   cursor: str | None = None, limit: int = 50) -> CustomerPage:
    """Newest first, keyset-paginated by id. `customer_ids` lets other domains (tags, segments) filter."""
    limit = max(1, min(limit, MAX_PAGE))
    stmt = select(Customer).where(Customer.workspace_id == workspace_id, Customer.merged_into_id.is_(None))
    if phone:
        stmt = stmt.where(Customer.phone == normalise_value("phone", phone))
    if identity_type and identity_value:
        normalised = normalise_value(identity_type, identity_value)
        stmt = stmt.where(Customer.id.in_(select(Identity.customer_id).where(
            Identity.workspace_id == workspace_id, Identity.type == identity_type, Identity.value == normalised)))
    if query:
        stmt = stmt.where(_search_condition(session, workspace_id, query))
    if customer_ids is not None:
        stmt = stmt.where(Customer.id.in_(customer_ids))
    if cursor:
        (last_id,) = decode_cursor(cursor)
        stmt = stmt.where(Customer.id < int(last_id))
    rows = list(session.scalars(stmt.order_by(Customer.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return CustomerPage(rows[:limit], next_cursor)


def count_customers(session: Session, workspace_id: int) -> int:
    """Profiles of real people: absorbed profiles are not counted."""
    return int(session.scalar(select(func.count()).select_from(Customer).where(
        Customer.workspace_id == workspace_id, Customer.merged_into_id.is_(None))) or 0)


def new_customers_per_day(session: Session, workspace_id: int, timezone: str,
                          days: int = 30) -> list[tuple[date, int]]:
    """Customers first seen on each of the last `days` local days (today included), oldest first."""
    tz = zone(timezone)
    first_day = clock.now().astimezone(tz).date() - timedelta(days=days - 1)
    bounds = [datetime.combine(first_day + timedelta(days=i), time(), tzinfo=tz).astimezone(UTC)
              for i in range(days + 1)]
    seen = Customer.first_seen_at
    counts = session.execute(select(*[func.count().filter((seen >= bounds[i]) & (seen < bounds[i + 1]))
                                      for i in range(days)])
                             .where(Customer.workspace_id == workspace_id, Customer.merged_into_id.is_(None),
                                    seen >= bounds[0], seen < bounds[-1])).one()
    return [(first_day + timedelta(days=i), int(count)) for i, count in enumerate(counts)]


def customers_by_id(session: Session, workspace_id: int, customer_ids: list[int]) -> dict[int, Customer]:
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    return {c.id: c for c in session.scalars(select(Customer).where(Customer.workspace_id == workspace_id,
                                                                    Customer.id.in_(ids)))}


def identities_by_customer(session: Session, workspace_id: int, customer_ids: list[int]) -> dict[int, list[Identity]]:
    found: dict[int, list[Identity]] = {cid: [] for cid in customer_ids}
    if not customer_ids:
        return found
    for identity in session.scalars(select(Identity).where(Identity.workspace_id == workspace_id,
                                                           Identity.customer_id.in_(sorted(set(customer_ids))))
                                    .order_by(Identity.type, Identity.id)):
        found[identity.customer_id].append(identity)
    return found


def _search_condition(session: Session, workspace_id: int, query: str) -> Any:
    text = query.strip()
    conditions = [Customer.name.contains(text, autoescape=True),
                  Customer.email == text.lower(),
                  Customer.id.in_(select(Identity.customer_id).where(Identity.workspace_id == workspace_id,
                                                                     Identity.value == text))]
    if text.isdigit():
        conditions.append(Customer.id == int(text))
    with contextlib.suppress(ValidationFailed):  # not a phone number: search the other fields only
        conditions.append(Customer.phone == normalise_value("phone", text))
    return or_(*conditions)


# -- merges ------------------------------------------------------------------------------------

def merge_customers(session: Session, ctx: WorkspaceContext, survivor_id: int, absorbed_id: int, *,
                    reason: str, actor: str) -> CustomerMerge:
    """Fold `absorbed` into `survivor`: identities, events, orders and attributes move; nothing is lost."""
    from siyu.events.service import reassign_customer_records

    survivor = get_customer(session, ctx.id, survivor_id)
    absorbed = get_customer(session, ctx.id, absorbed_id)
    if survivor.id == absorbed.id:
        raise ValidationFailed("cannot merge a customer into itself", field="customer_id")
    if absorbed.id < survivor.id:  # the older profile survives, whoever asked
        survivor, absorbed = absorbed, survivor
    conflicts = _merge_profiles(survivor, absorbed)
    session.execute(update(Identity).where(Identity.customer_id == absorbed.id).values(customer_id=survivor.id))
    session.execute(update(Customer).where(Customer.merged_into_id == absorbed.id)
                    .values(merged_into_id=survivor.id))
    _repoint_links(session, ctx.id, absorbed.id, survivor.id)
    absorbed.merged_into_id = survivor.id
    absorbed.updated_at = survivor.updated_at = clock.now()
    session.flush()
    reassign_customer_records(session, ctx.id, absorbed.id, survivor.id)
    return record_merge(session, ctx, survivor.id, absorbed.id, reason=reason, actor=actor, conflicts=conflicts)


def record_merge(session: Session, ctx: WorkspaceContext, survivor_id: int, absorbed_id: int, *, reason: str,
                 actor: str, conflicts: dict[str, Any]) -> CustomerMerge:
    """The merge record, its audit entry and the `customer_merged` domain event."""
    from siyu.jobs.service import publish

    session.execute(update(Customer).where(Customer.id == absorbed_id, Customer.workspace_id == ctx.id)
                    .values(merged_into_id=survivor_id))
    merge = CustomerMerge(workspace_id=ctx.id, survivor_id=survivor_id, absorbed_id=absorbed_id, reason=reason,
                          conflicts=conflicts, merged_at=clock.now())
    session.add(merge)
    record_audit(session, ctx.id, actor, "customer.merged", "customer", survivor_id,
                 {"absorbed_id": absorbed_id, "reason": reason, "conflicts": conflicts})
    publish(session, "customer_merged", {"workspace_id": ctx.id, "survivor_id": survivor_id,
                                         "absorbed_id": absorbed_id},
            workspace_id=ctx.id, key=f"merge:{absorbed_id}")
    session.flush()
    return merge


def _newer_profile_first(a: Customer, b: Customer) -> tuple[Customer, Customer]:
    a_at = a.profile_updated_at or a.last_seen_at
    b_at = b.profile_updated_at or b.last_seen_at
    if b_at is not None and (a_at is None or b_at > a_at):
        return b, a
    return a, b


def _merge_profiles(survivor: Customer, absorbed: Customer) -> dict[str, Any]:
    """Newer non-empty values win; every value that lost is recorded as a conflict."""
    newer, older = _newer_profile_first(survivor, absorbed)
    conflicts: dict[str, Any] = {}
    for column in PROFILE_COLUMNS:
        new_value, old_value = getattr(newer, column), getattr(older, column)
        winner = new_value if new_value not in (None, "") else old_value
        loser = old_value if winner is new_value else None
        if loser not in (None, "") and loser != winner:
            conflicts[column] = {"kept": _jsonable(winner), "discarded": _jsonable(loser)}
        setattr(survivor, column, winner)
    attributes = dict(older.attributes or {})
    for key, value in (newer.attributes or {}).items():
        if key in attributes and attributes[key] != value and value not in (None, ""):
            conflicts[f"attributes.{key}"] = {"kept": value, "discarded": attributes[key]}
        if value not in (None, ""):
            attributes[key] = value
    survivor.attributes = attributes
    survivor.first_seen_at = _earliest(survivor.first_seen_at, absorbed.first_seen_at)
    survivor.last_seen_at = _latest(survivor.last_seen_at, absorbed.last_seen_at)
    survivor.profile_updated_at = _latest(survivor.profile_updated_at, absorbed.profile_updated_at)
    if older.acquisition_channel:  # acquisition is where the person first came from
        survivor.acquisition_channel = older.acquisition_channel
    return conflicts


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return min(x for x in (a, b) if x is not None) if (a or b) else None


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(x for x in (a, b) if x is not None) if (a or b) else None


def _repoint_links(session: Session, workspace_id: int, absorbed_id: int, survivor_id: int) -> None:
    """Move the absorbed profile's links to the survivor. A link that would repeat another one (same
    two profiles, same identity) is dropped, and pending links between the two merged profiles close."""
    involved = list(session.scalars(select(IdentityLink).where(
        IdentityLink.workspace_id == workspace_id,
        or_(IdentityLink.customer_id.in_((absorbed_id, survivor_id)),
            IdentityLink.other_customer_id.in_((absorbed_id, survivor_id))))
        .order_by(IdentityLink.id)))
    seen: set[tuple[int, int, str, str]] = set()
    keep: list[tuple[IdentityLink, int, int]] = []
    for link in involved:
        first = survivor_id if link.customer_id == absorbed_id else link.customer_id
        second = survivor_id if link.other_customer_id == absorbed_id else link.other_customer_id
        key = (first, second, link.identity_type, link.identity_value)
        if key in seen:
            session.delete(link)
        else:
            seen.add(key)
            keep.append((link, first, second))
    session.flush()  # duplicates leave before the others take their keys
    for link, first, second in keep:
        link.customer_id, link.other_customer_id = first, second
        if first == second and link.status == "pending":
            link.status, link.decided_at, link.decided_by = "merged", clock.now(), "merge"


def merges_of(session: Session, workspace_id: int, customer_id: int) -> list[CustomerMerge]:
    return list(session.scalars(select(CustomerMerge).where(
        CustomerMerge.workspace_id == workspace_id,
        or_(CustomerMerge.survivor_id == customer_id, CustomerMerge.absorbed_id == customer_id))
        .order_by(CustomerMerge.id)))


def list_links(session: Session, workspace_id: int, status: str = "pending",
               customer_id: int | None = None) -> list[IdentityLink]:
    stmt = select(IdentityLink).where(IdentityLink.workspace_id == workspace_id, IdentityLink.status == status)
    if customer_id is not None:
        stmt = stmt.where(or_(IdentityLink.customer_id == customer_id,
                              IdentityLink.other_customer_id == customer_id))
    return list(session.scalars(stmt.order_by(IdentityLink.id).limit(500)))


def count_links(session: Session, workspace_id: int, status: str = "pending") -> int:
    return int(session.scalar(select(func.count()).select_from(IdentityLink).where(
        IdentityLink.workspace_id == workspace_id, IdentityLink.status == status)) or 0)


def decide_link(session: Session, ctx: WorkspaceContext, link_id: int, confirm: bool, actor: str) -> IdentityLink:
    """An operator confirms a weak match (the profiles merge) or rejects it (they stay apart)."""
    link = session.scalar(select(IdentityLink).where(and_(IdentityLink.id == link_id,
                                                          IdentityLink.workspace_id == ctx.id)))
    if link is None:
        raise LinkNotFound(f"no identity link {link_id}", field="link_id")
    if link.status != "pending":
        raise LinkAlreadyDecided(f"link {link_id} is already {link.status}", field="link_id")
    if confirm:
        merge_customers(session, ctx, link.customer_id, link.other_customer_id, reason="operator confirmed link",
                        actor=actor)
    link.status = "confirmed" if confirm else "rejected"
    link.decided_at, link.decided_by = clock.now(), actor
    record_audit(session, ctx.id, actor, f"identity_link.{link.status}", "identity_link", link.id, {})
    session.flush()
    return link


# -- the whole profile -------------------------------------------------------------------------

@dataclass
class CustomerProfile:
    customer: Customer
    identities: list[Identity]
    rollup: dict[str, Any]
    merged_ids: list[int]
    requested_id: int


def customer_profile(session: Session, workspace_id: int, customer_id: int) -> CustomerProfile:
    """Profile, identities, rollups and absorbed ids of a customer (an absorbed id gives its survivor)."""
    from siyu.events.rollups import category_stats_of, rollup_of

    customer = get_customer(session, workspace_id, customer_id)
    rollup = rollup_of(session, customer.id)
    categories = {s.category: s.orders_count for s in category_stats_of(session, customer.id)}
    summary: dict[str, Any] = {"categories": categories}
    if rollup is not None:
        summary.update(orders_count=rollup.orders_count, total_spend_fen=rollup.total_spend_fen,
                       refunded_fen=rollup.refunded_fen, first_order_at=rollup.first_order_at,
                       last_order_at=rollup.last_order_at, last_interaction_at=rollup.last_interaction_at,
                       events_count=rollup.events_count,
                       average_order_fen=rollup.total_spend_fen // rollup.orders_count if rollup.orders_count else 0)
    merged_ids = list(session.scalars(select(Customer.id).where(Customer.workspace_id == workspace_id,
                                                                Customer.merged_into_id == customer.id)))
    return CustomerProfile(customer, customer_identities(session, workspace_id, customer.id), summary,
                           merged_ids, customer_id)


# -- reads for other domains (coupons, loyalty) -------------------------------------------------

def resolve_customer_ids(session: Session, workspace_id: int, customer_ids: list[int]) -> dict[int, int]:
    """Each id of this workspace → the profile it resolves to (its survivor after merges).
    Ids unknown in the workspace are left out."""
    found: dict[int, int] = {}
    unique = sorted(set(customer_ids))
    for start in range(0, len(unique), 5000):
        stmt = select(Customer.id, Customer.merged_into_id).where(Customer.workspace_id == workspace_id)
        rows = session.execute(restrict(session, stmt, Customer.id, unique[start:start + 5000]))
        found.update({int(cid): int(merged or cid) for cid, merged in rows})
    return found


def customers_born_in_month(session: Session, workspace_id: int, customer_ids: list[int], month: int) -> set[int]:
    """Which of these customers have their birthday in `month` (1-12)."""
    found: set[int] = set()
    unique = sorted(set(customer_ids))
    for start in range(0, len(unique), 5000):
        found.update(session.scalars(select(Customer.id).where(
            Customer.workspace_id == workspace_id, Customer.id.in_(unique[start:start + 5000]),
            Customer.birthday.is_not(None), func.extract("month", Customer.birthday) == month)))
    return found


# -- reads for messaging ------------------------------------------------------------------------

def live_customer_ids(workspace_id: int) -> Select[Any]:
    """The ids of every profile of the workspace that was not merged away (an audience of "all")."""
    return select(Customer.id).where(Customer.workspace_id == workspace_id, Customer.merged_into_id.is_(None))


def contact_profiles(session: Session, workspace_id: int, customer_ids: list[int], *,
                     with_attributes: bool = True) -> list[Any]:
    """Rows (id, name, gender, city, province, birthday, attributes) for personalising messages;
    without attributes (None) when the message does not use them, which saves decoding them."""
    attributes = Customer.attributes if with_attributes else literal(None).label("attributes")
    rows: list[Any] = []
    unique = sorted(set(customer_ids))
    for start in range(0, len(unique), 5000):
        stmt = select(Customer.id, Customer.name, Customer.gender, Customer.city, Customer.province,
                      Customer.birthday, attributes).where(Customer.workspace_id == workspace_id)
        rows.extend(session.execute(restrict(session, stmt, Customer.id, unique[start:start + 5000])))
    return rows


def identity_values(session: Session, workspace_id: int, customer_ids: list[int], identity_type: str
                    ) -> dict[int, str]:
    """Each customer's identifier of one type (a verified one first, then the oldest): where to reach them."""
    found: dict[int, str] = {}
    unique = sorted(set(customer_ids))
    for start in range(0, len(unique), 5000):
        rows = session.execute(select(Identity.customer_id, Identity.value)
                               .where(Identity.workspace_id == workspace_id, Identity.type == identity_type,
                                      Identity.customer_id.in_(unique[start:start + 5000]))
                               .order_by(Identity.customer_id, Identity.verified.desc(), Identity.id))
        for customer_id, value in rows:
            found.setdefault(int(customer_id), value)
    return found


def customers_with_identity_type(session: Session, workspace_id: int, identity_type: str) -> list[int]:
    """Live customers holding an identity of this type (say, everyone with a member number), by id."""
    return [int(cid) for cid in session.scalars(
        select(Identity.customer_id).distinct()
        .join(Customer, Customer.id == Identity.customer_id)
        .where(Identity.workspace_id == workspace_id, Identity.type == identity_type,
               Customer.merged_into_id.is_(None))
        .order_by(Identity.customer_id))]


def customers_by_identities(session: Session, workspace_id: int, pairs: list[tuple[str, str]]
                            ) -> dict[tuple[str, str], int]:
    """Resolve (identity type, value) pairs — a CSV of phones, unionids... — to customer ids.
    Values are normalised first; malformed and unknown pairs are left out of the answer."""
    wanted: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for identity_type, raw in pairs:
        try:
            wanted.setdefault((identity_type, normalise_value(identity_type, raw)), []).append((identity_type, raw))
        except ValidationFailed:
            continue
    found: dict[tuple[str, str], int] = {}
    by_type: dict[str, list[str]] = {}
    for identity_type, value in wanted:
        by_type.setdefault(identity_type, []).append(value)
    for identity_type, values in by_type.items():
        for start in range(0, len(values), 500):
            rows = session.execute(select(Identity.value, Identity.customer_id).where(
                Identity.workspace_id == workspace_id, Identity.type == identity_type,
                Identity.value.in_(values[start:start + 500])))
            for value, customer_id in rows:
                for original in wanted[(identity_type, value)]:
                    found[original] = int(customer_id)
    return found
