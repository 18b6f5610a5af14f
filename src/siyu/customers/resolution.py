"""Identity resolution for a batch of events: which customer is each event about?

Rules (see docs/adr/0002-identity-resolution.md):
- an identity belongs to exactly one customer in a workspace;
- strong identities decide: an event whose strong identities belong to two or more customers merges
  them, the oldest (smallest id: created first) surviving;
- an event without any owned strong identity but with weak identities owned by exactly one customer is
  attributed to that customer; if it carries strong identities nobody owns yet, a new profile is created
  and each weak match is kept as a link for an operator to confirm;
- unknown identities of the event are attached to the resolved customer.
New profiles get negative temporary refs until `flush` inserts them in bulk.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from siyu.customers.identities import IdentityKey, ResolvedIdentity
from siyu.customers.models import Identity, IdentityLink
from siyu.db.base import table_of
from siyu.db.binary_copy import copy_rows
from siyu.db.bulk import Bulk
from siyu.kit import clock
from siyu.workspaces.service import WorkspaceContext

CHUNK = 500
PROFILE_COLUMNS = ("id", "workspace_id", "name", "gender", "birthday", "phone", "email", "city", "province",
                   "attributes", "acquisition_channel", "first_seen_at", "last_seen_at", "profile_updated_at",
                   "created_at", "updated_at")
Key = tuple[str, str, str]  # an identity's (type, namespace, value)


class EventIdentity(NamedTuple):
    """An identity as an event carries it, normalised. A plain tuple: batches hash these keys many times
    and the importer sends them between processes."""

    key: Key
    verified: bool
    strong: bool

    @classmethod
    def of(cls, identity: ResolvedIdentity) -> EventIdentity:
        key = identity.key
        return cls((sys.intern(key.type), sys.intern(key.namespace), key.value), identity.verified, identity.strong)


@dataclass
class NewProfile:
    ref: int
    first_seen_at: datetime
    last_seen_at: datetime
    traits: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)


class KnownOwners:
    """Owners of the identities earlier batches of one import saw, so that later batches look up only
    the others. Exact only while nobody else writes between the batches, which both databases tell
    (`Bulk.quiet_stamps`): otherwise everything is forgotten and looked up again."""

    LIMIT = 500_000  # identities remembered at most (about 100 MB); then it starts over

    def __init__(self) -> None:
        self.owners: dict[Key, int] = {}
        self._quiet: frozenset[Any] = frozenset()

    def refresh(self, session: Session) -> None:
        """At the start of a batch: forget everything if anyone else wrote since the last one settled."""
        if Bulk(session).write_stamp() not in self._quiet or len(self.owners) > self.LIMIT:
            self.owners.clear()

    def settle(self, session: Session) -> None:
        """At the end of a batch, after it stored the identities it learnt."""
        self._quiet = Bulk(session).quiet_stamps()

    def forget(self) -> None:
        """What the batches of a transaction that rolled back learnt is not so."""
        self.owners.clear()
        self._quiet = frozenset()


class BatchResolver:
    def __init__(self, session: Session, ctx: WorkspaceContext, actor: str = "ingest",
                 known: KnownOwners | None = None) -> None:
        self.session = session
        self.ctx = ctx
        self.actor = actor
        self.known = known
        # Owners of the identities seen: with `known`, the import's own map, added to as the batch goes
        # (what a batch that rolls back added is forgotten with it: `KnownOwners.forget`).
        self.owner: dict[Key, int] = known.owners if known is not None else {}
        self.alias: dict[int, int] = {}
        self.new_profiles: dict[int, NewProfile] = {}
        self.new_identities: dict[Key, tuple[int, bool]] = {}
        self.weak_links: set[tuple[int, int, Key]] = set()
        self.merges: list[tuple[int, int]] = []
        # Profiles first seen in this batch and merged before they were stored: they are still
        # written (as absorbed tombstones) so every merge has its record and audit entry.
        self.batch_merges: list[tuple[int, int]] = []
        self.absorbed_profiles: dict[int, NewProfile] = {}
        self.existing_traits: defaultdict[int, list[tuple[datetime, dict[str, Any]]]] = defaultdict(list)
        self._next_temp = -1

    # -- loading -------------------------------------------------------------------------------
    def preload(self, identity_lists: list[list[EventIdentity]]) -> None:
        """Load the owners of every identity in the batch not known yet: one indexed lookup per type
        (and namespace)."""
        keys = {identity[0] for identities in identity_lists for identity in identities}
        by_kind: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
        for type_, namespace, value in keys.difference(self.owner):
            by_kind[(type_, namespace)].append(value)
        bulk = Bulk(self.session)
        for (type_, namespace), values in by_kind.items():
            rows = bulk.select_in("SELECT value, customer_id FROM identities WHERE workspace_id = ? AND type = ? "
                                  "AND namespace = ? AND value {keys}", (self.ctx.id, type_, namespace), sorted(values))
            for value, customer_id in rows:
                self.owner[(type_, namespace, value)] = customer_id

    # -- resolving -----------------------------------------------------------------------------
    def canonical(self, ref: int) -> int:
        while ref in self.alias:
            ref = self.alias[ref]
        return ref

    def resolve_all(self, identity_lists: list[list[EventIdentity]], times: list[datetime]) -> list[int]:
        """`resolve` for each event of a batch, in order. The common case inline: one identity, owned by
        a stored profile, and no merges so far."""
        owners, alias, resolve = self.owner, self.alias, self.resolve
        refs = []
        for identities, occurred_at in zip(identity_lists, times, strict=True):
            if len(identities) == 1 and not alias:
                owner = owners.get(identities[0][0])
                if owner is not None and owner > 0:
                    refs.append(owner)
                    continue
            refs.append(resolve(identities, occurred_at))
        return refs

    def resolve(self, identities: list[EventIdentity], occurred_at: datetime) -> int:
        sole = self._sole_owner(identities)
        if sole is not None:  # the common case, with nothing to decide
            self._touch(sole, occurred_at)
            return sole
        strong_owners = self._owners(i for i in identities if i.strong)
        weak_owners = self._owners(i for i in identities if not i.strong)
        has_strong = any(i.strong for i in identities)
        if strong_owners:
            target = self._merge_all(strong_owners)
        elif len(weak_owners) == 1 and not self._has_unowned_strong(identities):
            target = next(iter(weak_owners))
        else:
            target = self._new_profile(occurred_at)
        for identity in identities:
            current = self.owner.get(identity.key)
            if current is None:
                self.owner[identity.key] = target
                self.new_identities[identity.key] = (target, identity.verified)
            elif self.canonical(current) != target and not identity.strong:
                self.weak_links.add((target, self.canonical(current), identity.key))
        if not has_strong and len(weak_owners) > 1:
            for other in weak_owners - {target}:
                self.weak_links.add((target, other, identities[0].key))
        self._touch(target, occurred_at)
        return target

    def _sole_owner(self, identities: list[EventIdentity]) -> int | None:
        """The customer owning every one of these identities, if a single one does."""
        sole = None
        owners, alias = self.owner, self.alias
        for identity in identities:
            owner = owners.get(identity[0])
            if owner is None:
                return None
            if alias:
                owner = self.canonical(owner)
            if sole is None:
                sole = owner
            elif owner != sole:
                return None
        return sole

    def _owners(self, identities: Any) -> set[int]:
        owners = set()
        for identity in identities:
            owner = self.owner.get(identity.key)
            if owner is not None:
                owners.add(self.canonical(owner))
        return owners

    def _has_unowned_strong(self, identities: list[EventIdentity]) -> bool:
        return any(i.strong and i.key not in self.owner for i in identities)

    def _new_profile(self, occurred_at: datetime) -> int:
        ref = self._next_temp
        self._next_temp -= 1
        self.new_profiles[ref] = NewProfile(ref, occurred_at, occurred_at)
        return ref

    def _touch(self, ref: int, occurred_at: datetime) -> None:
        if ref > 0:  # a stored profile: its first and last seen are widened from the events it gets
            return
        profile = self.new_profiles.get(ref)
        if profile is not None:
            profile.first_seen_at = min(profile.first_seen_at, occurred_at)
            profile.last_seen_at = max(profile.last_seen_at, occurred_at)

    def _merge_all(self, owners: set[int]) -> int:
        """Merge every owner into the oldest: stored profiles before new ones, then by id."""
        existing = sorted(r for r in owners if r > 0)
        new = sorted((r for r in owners if r < 0), reverse=True)  # -1 was created before -2
        ordered = existing + new
        survivor = ordered[0]
        for absorbed in ordered[1:]:
            self._merge(survivor, absorbed)
        return survivor

    def _merge(self, survivor: int, absorbed: int) -> None:
        from siyu.customers.service import merge_customers

        if absorbed > 0:
            merge_customers(self.session, self.ctx, survivor, absorbed, reason="shared strong identity",
                            actor=self.actor)
            self.merges.append((survivor, absorbed))
        else:
            profile = self.new_profiles.pop(absorbed)
            self._touch(survivor, profile.first_seen_at)
            self._touch(survivor, profile.last_seen_at)
            self.add_traits(survivor, profile.traits)
            self.absorbed_profiles[absorbed] = profile
            self.batch_merges.append((survivor, absorbed))
        self.alias[absorbed] = survivor

    def add_traits(self, ref: int, traits: list[tuple[datetime, dict[str, Any]]]) -> None:
        if ref < 0:
            self.new_profiles[self.canonical(ref)].traits.extend(traits)
        else:
            self.existing_traits[ref].extend(traits)

    # -- writing -------------------------------------------------------------------------------
    def flush(self) -> dict[int, int]:
        """Insert new profiles, identities and links; returns temp ref → customer id."""
        real = self._insert_new_profiles()
        self._insert_identities(real)
        self._insert_links(real)
        self._apply_existing_traits()
        self._record_batch_merges(real)
        self._remember(real)
        return real

    def _remember(self, real: dict[int, int]) -> None:
        """Leave the import's map of owners (`self.owner`) as stored: identities of absorbed profiles
        belong to their survivors, new ones to the profiles' real ids."""
        if self.known is None:
            return
        known = self.owner
        if self.merges:
            moved = {absorbed: self.canonical(absorbed) for _, absorbed in self.merges}
            for key, owner in known.items():
                if owner in moved:
                    known[key] = moved[owner]
        for key, (ref, _verified) in self.new_identities.items():
            known[key] = self.final_id(ref, real)

    def final_id(self, ref: int, real: dict[int, int]) -> int:
        if self.alias:
            ref = self.canonical(ref)
        return real[ref] if ref < 0 else ref

    def _insert_new_profiles(self) -> dict[int, int]:
        from siyu.customers.service import profile_from_traits

        profiles = sorted([*self.new_profiles.values(), *self.absorbed_profiles.values()], key=lambda p: -p.ref)
        if not profiles:
            return {}
        bulk = Bulk(self.session)
        now = bulk.ts(clock.now())
        ids = bulk.allocate_ids("customers", len(profiles))
        phone_of, email_of = self._contact_identities()
        rows = []
        for customer_id, profile in zip(ids, profiles, strict=True):
            fields, traits_at = profile_from_traits(profile.traits if profile.ref in self.new_profiles else [])
            rows.append((customer_id, self.ctx.id, fields.get("name"), fields.get("gender"),
                         bulk.day(fields.get("birthday")), fields.get("phone") or phone_of.get(profile.ref),
                         fields.get("email") or email_of.get(profile.ref), fields.get("city"), fields.get("province"),
                         bulk.json(fields.get("attributes") or {}), fields.get("acquisition_channel"),
                         bulk.ts(profile.first_seen_at), bulk.ts(profile.last_seen_at), bulk.ts(traits_at), now, now))
        copy_rows(self.session, "customers", PROFILE_COLUMNS, rows)
        return {profile.ref: customer_id for profile, customer_id in zip(profiles, ids, strict=True)}

    def _contact_identities(self) -> tuple[dict[int, str], dict[int, str]]:
        phone_of: dict[int, str] = {}
        email_of: dict[int, str] = {}
        for (type_, _namespace, value), (ref, _verified) in self.new_identities.items():
            target = self.canonical(ref)
            if type_ == "phone":
                phone_of.setdefault(target, value)
            elif type_ == "email":
                email_of.setdefault(target, value)
        return phone_of, email_of

    def _record_batch_merges(self, real: dict[int, int]) -> None:
        from siyu.customers.service import record_merge

        for _, absorbed in self.batch_merges:
            survivor_id = self.final_id(absorbed, real)
            record_merge(self.session, self.ctx, survivor_id, real[absorbed], reason="shared strong identity",
                         actor=self.actor, conflicts={})

    def _insert_identities(self, real: dict[int, int]) -> None:
        if not self.new_identities:
            return
        bulk = Bulk(self.session)
        now = bulk.ts(clock.now())
        rows = [(self.ctx.id, self.final_id(ref, real), *key, bulk.flag(verified), now)
                for key, (ref, verified) in self.new_identities.items()]
        bulk.insert_all("identities", ("workspace_id", "customer_id", "type", "namespace", "value", "verified",
                                       "created_at"), rows, conflict="DO NOTHING")

    def _insert_links(self, real: dict[int, int]) -> None:
        now = clock.now()
        rows = []
        for a, b, (type_, _namespace, value) in self.weak_links:
            first, second = self.final_id(a, real), self.final_id(b, real)
            if first != second:
                rows.append({"workspace_id": self.ctx.id, "customer_id": first, "other_customer_id": second,
                             "identity_type": type_, "identity_value": value, "status": "pending",
                             "created_at": now})
        if rows:
            dialect = self.session.get_bind().dialect.name
            insert_fn = pg_insert if dialect == "postgresql" else sqlite_insert
            self.session.execute(insert_fn(table_of(IdentityLink)).on_conflict_do_nothing(), rows)

    def _apply_existing_traits(self) -> None:
        from siyu.customers.service import apply_traits

        for ref, traits in self.existing_traits.items():
            customer_id = self.canonical(ref)
            for occurred_at, values in sorted(traits, key=lambda t: t[0]):
                apply_traits(self.session, self.ctx.id, customer_id, values, occurred_at)


def existing_keys(session: Session, workspace_id: int, keys: list[IdentityKey]) -> dict[IdentityKey, int]:
    """Owners of the given identity keys (used by lookups outside ingestion)."""
    found: dict[IdentityKey, int] = {}
    table = Identity.__table__
    for start in range(0, len(keys), CHUNK):
        chunk = [(k.type, k.namespace, k.value) for k in keys[start:start + CHUNK]]
        rows = session.execute(select(table.c.type, table.c.namespace, table.c.value, table.c.customer_id)
                               .where(table.c.workspace_id == workspace_id,
                                      tuple_(table.c.type, table.c.namespace, table.c.value).in_(chunk)))
        for type_, namespace, value, customer_id in rows:
            found[IdentityKey(type_, namespace, value)] = customer_id
    return found
