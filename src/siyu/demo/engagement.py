"""What a demo customer does in the 私域 besides buying: 企业微信 contact, browsing, chat, 社群, 打卡."""

from __future__ import annotations

import random
from dataclasses import dataclass

from siyu.demo.catalog import BABY_CATEGORIES, BEAUTY_CATEGORIES, PRODUCTS, Product
from siyu.demo.purchases import Period, PlacedOrder
from siyu.demo.timeline import DAY, HOUR, Activity, Window

PAGE_VIEWS_PER_DAY = 2.5 / 30       # while engaged
MESSAGES_PER_DAY = 0.6 / 30         # while engaged
IDLE_ACCEPT = 0.08                  # activity left while not engaged (沉睡 / 流失)
ENGAGED_TAIL_DAYS = 30              # interest outlasts the last order by about a month
GROUP_COUNT = 6                     # groups of each kind, opened one after another over the year
_TEXTS = {
    "baby": ("奶粉最近有活动吗?", "宝宝8个月了,可以换2段吗?", "纸尿裤M码还有货吗?", "宝宝红屁屁用什么好?",
             "米粉几个月可以吃?", "群里的优惠券怎么领?", "积分可以换什么?", "宝宝便秘喝哪款奶粉好?"),
    "beauty": ("敏感肌可以用这款面膜吗?", "精华和乳液的使用顺序是?", "口红有试色图吗?", "面膜买二送一还有吗?",
               "防晒需要卸妆吗?", "积分可以换什么?", "混油皮推荐哪款粉底?"),
}
_AFTER_ORDER_TEXTS = ("什么时候发货?", "收到了,谢谢!", "快递到哪了?", "赠品没收到哦", "包装有点破损,可以换吗?")
_SHARE_CONTENT = {
    "baby": ("art_milk_powder_stages", "art_diaper_sizes", "post_mom_day_sale", "art_first_food_guide"),
    "beauty": ("art_skincare_routine", "post_mask_buy2get1", "art_sunscreen_faq", "post_new_lipstick"),
}
_GROUPS = {"baby": ("grp_mom", "宝妈交流群"), "beauty": ("grp_beauty", "美妆福利群")}
_SURVEYS = {"baby": "baby_age_survey", "beauty": "skin_type_survey"}


@dataclass(frozen=True, slots=True)
class Contact:
    """The customer as a 企业微信 contact of one staff member (一对一)."""

    added_ts: int
    channel: str
    staff_id: str
    deleted_ts: int | None


@dataclass(frozen=True, slots=True)
class Engagement:
    contact: Contact
    interest: str                 # baby, beauty or both
    engaged: list[Period]         # when the customer pays attention
    products: list[Product]       # what they buy, and so browse

    def is_engaged(self, ts: int) -> bool:
        return any(begin <= ts < stop for begin, stop in self.engaged)

    def topic(self, rng: random.Random) -> str:
        if self.interest == "both":
            return "baby" if rng.random() < 0.5 else "beauty"
        return self.interest


def engaged_periods(buying: list[Period], window: Window) -> list[Period]:
    tail = ENGAGED_TAIL_DAYS * DAY
    return [(begin, min(stop + tail, window.end_ts)) for begin, stop in buying]


def plan_deletion(rng: random.Random, added_ts: int, engaged: list[Period], window: Window) -> int | None:
    """Some churned customers delete the staff member (删好友); a few active ones too."""
    last = engaged[-1][1] if engaged else added_ts
    if last < window.end_ts - 30 * DAY and rng.random() < 0.25:
        ts = last + int(rng.uniform(7, 60) * DAY)
    elif rng.random() < 0.03:
        ts = int(rng.uniform(added_ts, window.end_ts))
    else:
        return None
    return window.daytime(rng, ts, added_ts + HOUR) if added_ts < ts < window.end_ts else None


def engagement_activities(rng: random.Random, engagement: Engagement, orders: list[PlacedOrder],
                          window: Window, out: list[Activity]) -> None:
    contact = engagement.contact
    live_code = f"lc_{contact.channel}"  # 渠道活码
    out.append(Activity(contact.added_ts, "contact_added", "wecom",
                        {"staff_id": contact.staff_id, "channel": contact.channel, "live_code": live_code}))
    if contact.deleted_ts is not None:
        out.append(Activity(contact.deleted_ts, "contact_deleted", "wecom", {"staff_id": contact.staff_id}))
    _page_views(rng, engagement, window, out)
    _messages(rng, engagement, orders, window, out)
    _groups(rng, engagement, window, out)
    _shares_and_surveys(rng, engagement, window, out)


def _poisson_times(rng: random.Random, engagement: Engagement, per_day: float, until: int,
                   window: Window) -> list[int]:
    """Moments of a process running at per_day while engaged and at IDLE_ACCEPT of it otherwise."""
    times: list[int] = []
    t = float(engagement.contact.added_ts)
    while True:
        t += rng.expovariate(per_day) * DAY
        if t >= until:
            return times
        if engagement.is_engaged(int(t)) or rng.random() < IDLE_ACCEPT:
            times.append(window.daytime(rng, int(t), engagement.contact.added_ts))


def _page_views(rng: random.Random, engagement: Engagement, window: Window, out: list[Activity]) -> None:
    uses_app = rng.random() < 0.08
    for ts in _poisson_times(rng, engagement, PAGE_VIEWS_PER_DAY, window.end_ts, window):
        if rng.random() < 0.3:
            page, title = "/", "小林母婴美妆 首页"
        else:
            product = _browsed_product(rng, engagement)
            page, title = f"/products/{product.sku}", product.name
        via = "app" if uses_app and rng.random() < 0.5 else "mini_program"
        out.append(Activity(ts, "page_view", via, {"page": page, "title": title}))


def _browsed_product(rng: random.Random, engagement: Engagement) -> Product:
    if engagement.products and rng.random() < 0.7:
        return rng.choice(engagement.products)
    categories = BABY_CATEGORIES if engagement.topic(rng) == "baby" else BEAUTY_CATEGORIES
    candidates = [p for p in PRODUCTS if p.category in categories]
    return rng.choice(candidates)


def _messages(rng: random.Random, engagement: Engagement, orders: list[PlacedOrder], window: Window,
              out: list[Activity]) -> None:
    contact = engagement.contact
    until = contact.deleted_ts or window.end_ts
    for ts in _poisson_times(rng, engagement, MESSAGES_PER_DAY, until, window):
        text = rng.choice(_TEXTS[engagement.topic(rng)])
        out.append(Activity(ts, "message_received", "wecom", {"staff_id": contact.staff_id, "text": text}))
    for order in orders:
        if contact.added_ts <= order.ts and rng.random() < 0.2:
            ts = order.ts + rng.randint(1, 30) * HOUR
            if ts < until:
                out.append(Activity(ts, "message_received", "wecom",
                                    {"staff_id": contact.staff_id, "text": rng.choice(_AFTER_ORDER_TEXTS)}))


def _groups(rng: random.Random, engagement: Engagement, window: Window, out: list[Activity]) -> None:
    """社群: some join a group of their interest; a few leave; some do a 打卡 streak."""
    kinds = ("baby", "beauty") if engagement.interest == "both" else (engagement.interest,)
    for kind in kinds:
        if rng.random() >= (0.45 if kind == "baby" else 0.35):
            continue
        joined = engagement.contact.added_ts + int(rng.expovariate(1 / 5) * DAY)
        if joined >= window.end_ts:
            continue
        joined = window.daytime(rng, joined, engagement.contact.added_ts)
        prefix, label = _GROUPS[kind]
        number = min(GROUP_COUNT, 1 + int(window.fraction(joined) * GROUP_COUNT))
        group = {"group_id": f"{prefix}_{number:02d}", "group_name": f"{label}{number}"}
        out.append(Activity(joined, "group_joined", "wecom", dict(group)))
        left = _leave(rng, joined, window)
        if left is not None:
            out.append(Activity(left, "group_left", "wecom", dict(group)))
        if rng.random() < 0.25:
            _check_in_streak(rng, joined, left or window.end_ts, group["group_id"], window, out)


def _leave(rng: random.Random, joined: int, window: Window) -> int | None:
    if rng.random() >= 0.15:
        return None
    left = int(rng.uniform(joined + DAY, joined + 120 * DAY))
    return window.daytime(rng, left, joined + HOUR) if left < window.end_ts else None


def _check_in_streak(rng: random.Random, joined: int, until: int, group_id: str, window: Window,
                     out: list[Activity]) -> None:
    """A 21-day 打卡 challenge: a daily check-in, skipped now and then, often abandoned early."""
    day = joined + int(rng.uniform(1, 30)) * DAY
    for _ in range(rng.randint(5, 21)):
        if day >= until:
            return
        if rng.random() < 0.85:
            out.append(Activity(window.daytime(rng, day, joined), "check_in", "wecom", {"group_id": group_id}))
        day += DAY


def _shares_and_surveys(rng: random.Random, engagement: Engagement, window: Window,
                        out: list[Activity]) -> None:
    added = engagement.contact.added_ts
    if rng.random() < 0.12:
        for _ in range(rng.randint(1, 4)):
            ts = int(rng.uniform(added, window.end_ts))
            if engagement.is_engaged(ts):
                content = rng.choice(_SHARE_CONTENT[engagement.topic(rng)])
                out.append(Activity(window.daytime(rng, ts, added), "share", "mini_program",
                                    {"content_id": content, "channel": "wechat_moments"}))
    if rng.random() < 0.1:
        ts = window.daytime(rng, int(rng.uniform(added, window.end_ts)), added)
        out.append(Activity(ts, "form_submitted", "survey",
                            {"form_id": _SURVEYS[engagement.topic(rng)], "source": "mini_program"}))
