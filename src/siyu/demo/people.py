"""Who the demo customers are: persona, acquisition channel, name, city, birthday."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from enum import StrEnum


class Persona(StrEnum):
    BABY = "baby"          # 宝妈: 奶粉 / 纸尿裤 / 辅食 on their consumption cycles
    BEAUTY = "beauty"      # 美妆 buyer: 面膜 every ~14 days, 护肤, 彩妆
    MIXED = "mixed"        # a 宝妈 who also buys 美妆
    ONE_TIME = "one_time"  # buys once, never again
    LEAD = "lead"          # 潜客: joins the 私域 but never buys


BUYING_PERSONAS = (Persona.BABY, Persona.BEAUTY, Persona.MIXED)

# Acquisition channels (公域 → 私域 引流) and their share of new customers.
CHANNELS = ("douyin", "xiaohongshu", "shipinhao", "tmall", "ads", "store", "referral")
_CHANNEL_CUM = tuple(itertools.accumulate((24, 17, 10, 18, 8, 13, 10)))

_PERSONAS = tuple(Persona)
_DEFAULT_PERSONA_WEIGHTS = (30, 25, 10, 15, 20)
_PERSONA_WEIGHTS = {  # baby, beauty, mixed, one_time, lead
    "xiaohongshu": (18, 40, 9, 14, 19),
    "tmall": (34, 28, 11, 27, 0),   # a marketplace customer arrives by buying
    "store": (40, 18, 12, 22, 8),
    "referral": (40, 20, 12, 10, 18),
}
_PERSONA_CUM = {
    channel: tuple(itertools.accumulate(_PERSONA_WEIGHTS.get(channel, _DEFAULT_PERSONA_WEIGHTS)))
    for channel in CHANNELS
}
_BUYER_CUM = tuple(itertools.accumulate(_DEFAULT_PERSONA_WEIGHTS[:3]))

_FEMALE_SHARE = {Persona.BABY: 0.93, Persona.BEAUTY: 0.88, Persona.MIXED: 0.96}
_AGE_RANGE = {Persona.BABY: (24, 38), Persona.MIXED: (24, 38), Persona.BEAUTY: (19, 40)}

SURNAMES = (
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何",
    "林", "罗", "高", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾", "肖", "田",
    "董", "潘", "袁", "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁", "沈", "欧阳", "上官",
)
FEMALE_GIVEN_NAMES = (
    "芳", "娜", "敏", "静", "丽", "婷", "雪", "琳", "颖", "洁", "欣怡", "诗涵", "梓涵", "雨桐", "佳怡",
    "晓燕", "思雨", "梦瑶", "婉清", "慧敏", "玉洁", "珊珊", "文静", "可欣", "小雨", "雅琪", "嘉欣",
    "若曦", "晓琳", "美玲", "丹丹", "倩", "蕾", "悦", "一诺", "语嫣",
)
MALE_GIVEN_NAMES = (
    "伟", "强", "磊", "军", "洋", "勇", "杰", "涛", "浩然", "子轩", "宇航", "俊杰", "志强", "建华",
    "明辉", "晨阳", "博文", "家豪", "振宇", "鹏",
)
# (city, province, weight): tier-1 and new tier-1 cities dominate a 母婴美妆 shop's customers.
_CITIES = (
    ("上海", "上海", 10), ("北京", "北京", 9), ("杭州", "浙江", 8), ("广州", "广东", 8), ("深圳", "广东", 8),
    ("成都", "四川", 7), ("南京", "江苏", 6), ("武汉", "湖北", 6), ("苏州", "江苏", 5), ("重庆", "重庆", 5),
    ("西安", "陕西", 4), ("长沙", "湖南", 4), ("郑州", "河南", 3), ("宁波", "浙江", 3), ("青岛", "山东", 3),
    ("厦门", "福建", 3), ("合肥", "安徽", 2), ("佛山", "广东", 2), ("东莞", "广东", 2), ("济南", "山东", 2),
    ("昆明", "云南", 2), ("福州", "福建", 2), ("无锡", "江苏", 2), ("温州", "浙江", 2), ("沈阳", "辽宁", 2),
    ("天津", "天津", 3), ("南昌", "江西", 1), ("贵阳", "贵州", 1), ("南宁", "广西", 1), ("石家庄", "河北", 1),
)
_CITY_CUM = tuple(itertools.accumulate(weight for _, _, weight in _CITIES))

STORE_STAFF = tuple(f"staff_{n:02d}" for n in range(1, 5))    # 门店导购
ONLINE_STAFF = tuple(f"staff_{n:02d}" for n in range(5, 13))  # 线上客服 / 导购


@dataclass(frozen=True, slots=True)
class Person:
    persona: Persona
    interest: str             # "baby", "beauty" or "both": what they browse, ask about and buy
    channel: str              # acquisition_channel
    name: str
    gender: str
    city: str
    province: str
    birthday: str             # YYYY-MM-DD
    shares_birthday: bool     # told at first contact; otherwise maybe later (a traits update)
    uses_app: bool
    has_email: bool

    @property
    def buys(self) -> bool:
        return self.persona is not Persona.LEAD

    def traits(self) -> dict[str, str]:
        traits = {"name": self.name, "gender": self.gender, "city": self.city, "province": self.province}
        if self.shares_birthday:
            traits["birthday"] = self.birthday
        traits["acquisition_channel"] = self.channel
        return traits


def draw_person(rng: random.Random, end_year: int, merge_case: bool) -> Person:
    """A customer; a merge case is a douyin buyer (see generator's docstring)."""
    if merge_case:
        channel = "douyin"
        persona = rng.choices(BUYING_PERSONAS, cum_weights=_BUYER_CUM)[0]
    else:
        channel = rng.choices(CHANNELS, cum_weights=_CHANNEL_CUM)[0]
        persona = rng.choices(_PERSONAS, cum_weights=_PERSONA_CUM[channel])[0]
    female = rng.random() < _FEMALE_SHARE.get(persona, 0.8)
    given = rng.choice(FEMALE_GIVEN_NAMES if female else MALE_GIVEN_NAMES)
    city, province, _ = _CITIES[rng.choices(range(len(_CITIES)), cum_weights=_CITY_CUM)[0]]
    low, high = _AGE_RANGE.get(persona, (20, 45))
    birthday = f"{end_year - rng.randint(low, high)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return Person(
        persona=persona,
        interest=_interest(rng, persona),
        channel=channel,
        name=rng.choice(SURNAMES) + given,
        gender="female" if female else "male",
        city=city,
        province=province,
        birthday=birthday,
        shares_birthday=rng.random() < 0.65,
        uses_app=rng.random() < 0.08,
        has_email=rng.random() < 0.12,
    )


def _interest(rng: random.Random, persona: Persona) -> str:
    if persona is Persona.BABY:
        return "baby"
    if persona is Persona.BEAUTY:
        return "beauty"
    if persona is Persona.MIXED:
        return "both"
    return "baby" if rng.random() < 0.55 else "beauty"


def staff_for(rng: random.Random, contact_channel: str) -> str:
    """The 导购 / 客服 who owns the contact: a store's 导购 for store visitors, else an online one."""
    return rng.choice(STORE_STAFF if contact_channel == "store" else ONLINE_STAFF)
