"""A deterministic stream of synthetic events for the demo brand 小林母婴美妆.

`generate_demo_events(spec)` yields siyu ingestion events (the JSON shape of the events API) customer
by customer, in constant memory: nothing about a customer outlives its own events. The stream is a
pure function of the spec: customer i draws from `random.Random(f"{seed}:{i}")` only, and "now" is
`spec.end`, never the wall clock. Every event lies in [end - months, end).

Who is in it: customers acquired over the window from douyin, 小红书, 视频号, 天猫, ads, stores and
老带新 referrals; 宝妈 replenishing 奶粉 (30 days a can) and 纸尿裤 (20 days a pack), 美妆 buyers on
14-day 面膜 cycles, mixed buyers, one-time buyers and leads (潜客) who never buy. Each buyer has a
personal pace (±20 %), churns after a random time, and ~30 % of churned ones come back (沉睡 → 回流).
Around the orders: 企业微信 contacts via 渠道活码, page views, messages, 社群 joins, 打卡, shares,
coupons (新人无门槛, 满减, 折扣) and ~3 % refunds. About 5 % of adjacent low-stakes events (page views,
messages, shares, check-ins) are swapped, so a customer's events are not strictly in time order.

Identities: an ordinary customer's events all carry one strong *anchor* identity — a verified phone
for customers met on douyin, 小红书, ads, 天猫 or in a store, the wechat_unionid for 视频号 and
referrals — plus what the touchpoint knows (wecom_external_userid, wechat_openid in the 小程序's
namespace, douyin_openid, xhs_userid, member_no once registered, app_user_id, email, unverified
phones). No identity value is shared by two customers. So ingesting the stream yields exactly
`spec.customers` customers and no merge except the planned merge cases. "Strong" means siyu's
default strong types (wecom_external_userid, wechat_unionid, member_no, app_user_id, verified phone);
a workspace that makes phone weak would split phone-anchored customers and never merge the cases.

Merge cases (one customer known under two profiles that the engine must merge): every customer whose
index satisfies `index % MERGE_EVERY == MERGE_OFFSET` (2 %; see `is_merge_case`, `merge_case_indices`,
`expected_merge_count`). Such a customer is a douyin buyer whose events come in three phases, yielded
in time order without any swap:
1. set A, from acquisition until `split`: a douyin lead form and douyin orders carrying only
   {phone (verified, strong), douyin_openid}; a refund of such an order carries set A too, even when
   it happens later;
2. set B, from `split` until `link`: the customer adds a staff member on 企业微信 (a contact_added at
   `split`, through a 视频号, store or referral 活码) and everything carries the unionid-anchored set
   {wechat_unionid, wecom_external_userid, wechat_openid} — never the phone, douyin_openid or member_no;
3. at `link` (≥ 1 hour after `split`) a form_submitted "member_signup" (注册会员) carries
   wechat_unionid + phone + member_no: two strong identities owned by the set-A and the set-B
   profile, so the engine merges them — exactly one merge per case. Events after it are
   unionid-anchored and may carry any of the customer's identities. Both the first set-A event and
   the set-B contact_added carry the profile traits.
Whether the events are ingested in stream order or sorted by occurred_at, both profiles exist before
the link arrives, so ingestion creates `customers + expected_merge_count(spec)` profiles and ends
with `customers` after exactly `expected_merge_count(spec)` merges.

Speed (tests/demo/test_generator.py::test_generation_speed prints it): 90,000-108,000 events/s on
one core of a 2-vCPU Xeon cloud VM, ~19 events per customer. The full 1,000,000-customer brand (19.4
million events) took 222 s (87,000 events/s) with the process staying at 18 MB resident.
"""

from __future__ import annotations

import calendar
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from siyu.demo.catalog import Product
from siyu.demo.engagement import Contact, Engagement, engaged_periods, engagement_activities, plan_deletion
from siyu.demo.identities import CustomerIds, IdentityPolicy
from siyu.demo.people import Person, Persona, draw_person, staff_for
from siyu.demo.purchases import (
    OrderContext,
    Period,
    PlacedOrder,
    active_periods,
    choose_products,
    order_activities,
    plan_baskets,
)
from siyu.demo.timeline import DAY, HOUR, MINUTE, Activity, Window

MERGE_EVERY = 50
MERGE_OFFSET = 25

# Share of each channel's customers who add a staff member on 企业微信 (the 私域 proper).
_CONTACT_SHARE = {"douyin": 0.8, "xiaohongshu": 0.75, "ads": 0.85, "tmall": 0.45, "store": 0.85}
# Where a customer buys before the 小程序 competes: the marketplace they came from.
_HOME_MARKET = {"douyin": "douyin", "xiaohongshu": "tmall", "tmall": "tmall", "store": "store",
                "ads": "mini_program", "shipinhao": "mini_program", "referral": "mini_program"}
_PHONE_ANCHORED = frozenset({"douyin", "xiaohongshu", "ads", "tmall", "store"})
_LEAD_FORMS = {"baby": ("lf_newcomer_gift", "lf_parenting_class"), "beauty": ("lf_newcomer_gift", "lf_free_sample")}
_SWAPPABLE = frozenset({"page_view", "message_received", "share", "check_in"})
SWAP_SHARE = 0.05


@dataclass(frozen=True, kw_only=True)
class DemoSpec:
    customers: int = 5000
    seed: int = 42
    months: int = 12
    end: datetime  # tz-aware; the generator's "now": history spans [end - months, end)

    def __post_init__(self) -> None:
        if self.end.tzinfo is None or self.end.utcoffset() is None:
            raise ValueError("DemoSpec.end must be timezone-aware")
        if self.customers < 0 or self.months < 1:
            raise ValueError("DemoSpec needs customers >= 0 and months >= 1")

    @property
    def window(self) -> Window:
        start = _months_before(self.end.astimezone(UTC), self.months)
        return Window(math.ceil(start.timestamp()), math.floor(self.end.timestamp()))


def is_merge_case(index: int) -> bool:
    """Whether customer `index` appears under two profiles the engine must merge."""
    return index % MERGE_EVERY == MERGE_OFFSET


def merge_case_indices(spec: DemoSpec) -> range:
    return range(MERGE_OFFSET, spec.customers, MERGE_EVERY)


def expected_merge_count(spec: DemoSpec) -> int:
    """How many profile merges ingesting the whole stream must perform."""
    return len(merge_case_indices(spec))


def generate_demo_events(spec: DemoSpec) -> Iterator[dict[str, Any]]:
    """The demo brand's history, customer by customer (see the module docstring)."""
    window = spec.window
    end_year = spec.end.astimezone(UTC).year
    for index in range(spec.customers):
        yield from _customer_events(spec.seed, index, window, end_year)


@dataclass(frozen=True, slots=True)
class _Journey:
    """How a customer arrived: the first touch, the 企业微信 contact, the first order."""

    acquired_ts: int
    contact_channel: str | None
    contact_ts: int | None
    first_order_ts: int | None
    split_ts: int | None = None   # merge cases only
    link_ts: int | None = None


@dataclass(frozen=True, slots=True)
class _Customer:
    seed: int
    index: int
    person: Person
    journey: _Journey
    window: Window


def _customer_events(seed: int, index: int, window: Window, end_year: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(f"{seed}:{index}")
    merge_case = is_merge_case(index)
    person = draw_person(rng, end_year, merge_case)
    out: list[Activity] = []
    journey = _merge_journey(rng, window, out) if merge_case else _journey(rng, person, window, out)
    customer = _Customer(seed, index, person, journey, window)
    products = choose_products(rng, person.interest) if person.buys else []
    periods = _buying_periods(rng, customer)
    orders = _orders(rng, customer, products, periods, out)
    member_since = _membership(rng, customer, orders, out)
    if journey.contact_ts is not None and journey.contact_channel is not None:
        contact = _contact(rng, journey.contact_ts, journey.contact_channel, periods, window)
        engagement = Engagement(contact.contact, person.interest, contact.engaged, products)
        engagement_activities(rng, engagement, orders, window, out)
    policy = IdentityPolicy(
        ids=CustomerIds.derive(seed, index),
        anchor="phone" if person.channel in _PHONE_ANCHORED else "wechat_unionid",
        has_email=person.has_email,
        member_since=member_since,
        split_ts=journey.split_ts,
        link_ts=journey.link_ts,
    )
    out.sort(key=_by_time)
    if merge_case:
        _give_traits_to_second_profile(out, person, journey)
    else:
        _swap_some(rng, out)
    return _envelopes(seed, index, out, policy, person.traits())


def _acquisition_ts(rng: random.Random, window: Window) -> int:
    # u ** 0.8 leans towards the end: the brand's 私域 grows over the year.
    raw = window.start_ts + int(window.span * rng.random() ** 0.8)
    return min(window.daytime(rng, raw), window.end_ts - 2 * HOUR)


def _journey(rng: random.Random, person: Person, window: Window, out: list[Activity]) -> _Journey:
    channel = person.channel
    acquired = _acquisition_ts(rng, window)
    wants_contact = rng.random() < _CONTACT_SHARE.get(channel, 1.0)
    contact_ts: int | None = None
    first_order: int | None = None
    if channel in ("douyin", "xiaohongshu", "ads"):
        contact_ts = acquired
        if not wants_contact or rng.random() < 0.65:
            _lead_form(rng, person, acquired, channel, out)
            contact_ts = acquired + rng.randint(5, 180) * MINUTE if wants_contact else None
        if person.buys:
            first_order = window.daytime(rng, acquired + int(rng.expovariate(1 / 8) * DAY), acquired + HOUR)
    elif channel in ("shipinhao", "referral"):
        contact_ts = acquired
        if person.buys:
            first_order = window.daytime(rng, acquired + int(rng.expovariate(1 / 10) * DAY), acquired + HOUR)
    elif channel == "tmall":
        first_order = acquired
        if wants_contact:  # scanned the 包裹卡 in the parcel
            contact_ts = window.daytime(rng, acquired + int(rng.uniform(2, 7) * DAY), acquired + HOUR)
    else:  # store: the 导购 adds them at the till
        contact_ts = acquired if wants_contact or not person.buys else None
        first_order = acquired + rng.randint(10, 40) * MINUTE if person.buys else None
    contact_ts = _before_end(contact_ts, window)
    first_order = _before_end(first_order, window)
    return _Journey(acquired, channel if contact_ts is not None else None, contact_ts, first_order)


def _merge_journey(rng: random.Random, window: Window, out: list[Activity]) -> _Journey:
    """A douyin buyer (set A) who later adds 企业微信 (set B) and then registers as a member (link)."""
    acquired = window.daytime(rng, window.start_ts + int(window.span * 0.55 * rng.random()))
    out.append(Activity(acquired, "lead_submitted", "douyin", {"form_id": "lf_newcomer_gift", "source": "douyin"}))
    first_order = window.daytime(rng, acquired + int(rng.uniform(0.05, 1.5) * DAY), acquired + 10 * MINUTE)
    split_raw = acquired + 2 * DAY + int((window.end_ts - acquired - 4 * DAY) * rng.uniform(0.1, 0.4))
    split = window.daytime(rng, split_raw, acquired + DAY)
    link_raw = split + DAY + int((window.end_ts - split - 2 * DAY) * rng.uniform(0.05, 0.3))
    link = window.daytime(rng, link_raw, split + HOUR)
    contact_channel = rng.choice(("shipinhao", "store", "referral"))
    return _Journey(acquired, contact_channel, split, first_order, split_ts=split, link_ts=link)


def _before_end(ts: int | None, window: Window) -> int | None:
    return ts if ts is not None and ts < window.end_ts else None


def _lead_form(rng: random.Random, person: Person, ts: int, channel: str, out: list[Activity]) -> None:
    topic = "baby" if person.interest == "both" else person.interest
    form_id = rng.choice(_LEAD_FORMS[topic])
    out.append(Activity(ts, "lead_submitted", channel, {"form_id": form_id, "source": channel}))


def _buying_periods(rng: random.Random, customer: _Customer) -> list[Period]:
    first_order = customer.journey.first_order_ts
    if first_order is None:
        return []
    once = customer.person.persona is Persona.ONE_TIME
    return active_periods(rng, first_order, customer.window, once=once)


def _orders(rng: random.Random, customer: _Customer, products: list[Product], periods: list[Period],
            out: list[Activity]) -> list[PlacedOrder]:
    if not periods:
        return []
    person = customer.person
    lines = products[:1] if person.persona is Persona.ONE_TIME else products
    baskets = plan_baskets(rng, lines, periods, customer.window)
    context = OrderContext(customer.seed, customer.index, _HOME_MARKET[person.channel],
                           customer.journey.contact_ts, customer.window)
    return order_activities(rng, baskets, context, out)


def _membership(rng: random.Random, customer: _Customer, orders: list[PlacedOrder],
                out: list[Activity]) -> int | None:
    """注册会员 in the 小程序: forced at the link of a merge case, else often at the first 小程序 order."""
    journey, window = customer.journey, customer.window
    since: int | None = journey.link_ts
    if since is None and journey.contact_ts is not None:
        first_mini = next((o.ts for o in orders if o.channel == "mini_program"), None)
        if first_mini is not None and rng.random() < 0.6:
            since = max(journey.contact_ts, first_mini - rng.randint(2, 15) * MINUTE)
        elif rng.random() < 0.1:
            since = window.daytime(rng, int(rng.uniform(journey.contact_ts, window.end_ts)), journey.contact_ts)
    if since is None:
        return None
    person = customer.person
    traits = {"birthday": person.birthday} if not person.shares_birthday and rng.random() < 0.5 else None
    out.append(Activity(since, "form_submitted", "member_link",
                        {"form_id": "member_signup", "source": "mini_program"}, traits))
    return since


@dataclass(frozen=True, slots=True)
class _ContactPlan:
    contact: Contact
    engaged: list[Period]


def _contact(rng: random.Random, added_ts: int, channel: str, periods: list[Period],
             window: Window) -> _ContactPlan:
    """The 企业微信 contact and when the customer pays attention: while buying, or a lead's few weeks."""
    if periods:
        engaged = engaged_periods(periods, window)
    else:
        fade = added_ts + int(rng.expovariate(1 / 45) * DAY)
        engaged = [(added_ts, min(fade, window.end_ts))]
    contact = Contact(
        added_ts=added_ts,
        channel=channel,
        staff_id=staff_for(rng, channel),
        deleted_ts=plan_deletion(rng, added_ts, engaged, window),
    )
    return _ContactPlan(contact, engaged)


def _by_time(activity: Activity) -> int:
    return activity.ts


def _give_traits_to_second_profile(out: list[Activity], person: Person, journey: _Journey) -> None:
    for position, activity in enumerate(out):
        if activity.type == "contact_added" and activity.ts == journey.split_ts:
            out[position] = activity._replace(traits=person.traits())
            return


def _swap_some(rng: random.Random, out: list[Activity]) -> None:
    """Deliver some low-stakes neighbours out of order, as real pipelines do; never the first event."""
    for position in range(1, len(out) - 1):
        if (out[position].type in _SWAPPABLE and out[position + 1].type in _SWAPPABLE
                and rng.random() < SWAP_SHARE * 2):
            out[position], out[position + 1] = out[position + 1], out[position]


def _envelopes(seed: int, index: int, activities: list[Activity], policy: IdentityPolicy,
               first_traits: dict[str, str]) -> Iterator[dict[str, Any]]:
    prefix = f"demo-{seed}-{index}-"
    for number, activity in enumerate(activities):
        traits = dict(activity.traits or {})
        if number == 0:
            traits = first_traits | traits
        identity_ts = activity.ts if activity.identity_ts is None else activity.identity_ts
        yield {
            "id": prefix + str(number),
            "type": activity.type,
            "occurred_at": datetime.fromtimestamp(activity.ts, UTC).isoformat(),
            "identities": policy.identities(activity.via, identity_ts),
            "traits": traits,
            "properties": activity.properties,
        }


def _months_before(moment: datetime, months: int) -> datetime:
    month_index = moment.year * 12 + moment.month - 1 - months
    year, month0 = divmod(month_index, 12)
    day = min(moment.day, calendar.monthrange(year, month0 + 1)[1])
    return moment.replace(year=year, month=month0 + 1, day=day)
