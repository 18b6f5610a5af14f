"""The demo brand's product catalogue: ~25 SKUs of a 母婴 + 美妆 shop, priced in integer fen.

`consumption_cycle_days` is how long one unit lasts a typical customer (one can of 奶粉, one box of
面膜): the demo generator paces replenishment orders on it, and replenishment reminders can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

BRAND_NAME = "小林母婴美妆"

MILK_POWDER = "母婴/奶粉"
DIAPERS = "母婴/纸尿裤"
BABY_FOOD = "母婴/辅食"
FACE_MASK = "美妆/面膜"
SKINCARE = "美妆/护肤"
MAKEUP = "美妆/彩妆"

BABY_CATEGORIES = (MILK_POWDER, DIAPERS, BABY_FOOD)
BEAUTY_CATEGORIES = (FACE_MASK, SKINCARE, MAKEUP)

# Days one unit lasts, by category.
CATEGORY_CYCLE_DAYS: Mapping[str, int] = MappingProxyType({
    MILK_POWDER: 30,  # one 800 g can
    DIAPERS: 20,      # one pack
    BABY_FOOD: 15,    # one box / bag
    FACE_MASK: 14,    # one box
    SKINCARE: 60,     # one bottle
    MAKEUP: 90,       # one piece
})


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    category: str
    unit_price_fen: int
    consumption_cycle_days: int


def _product(sku: str, name: str, category: str, unit_price_fen: int) -> Product:
    return Product(sku, name, category, unit_price_fen, CATEGORY_CYCLE_DAYS[category])


PRODUCTS: tuple[Product, ...] = (
    _product("MF-101", "澳滋源 婴儿配方奶粉 1段 800g", MILK_POWDER, 29800),
    _product("MF-102", "澳滋源 较大婴儿配方奶粉 2段 800g", MILK_POWDER, 29800),
    _product("MF-103", "澳滋源 幼儿配方奶粉 3段 800g", MILK_POWDER, 27800),
    _product("MF-201", "禾沐 有机A2婴儿配方奶粉 1段 800g", MILK_POWDER, 35800),
    _product("MF-202", "禾沐 有机A2较大婴儿配方奶粉 2段 800g", MILK_POWDER, 34800),
    _product("ND-101", "云柔 纸尿裤 NB码 84片", DIAPERS, 12900),
    _product("ND-102", "云柔 纸尿裤 M码 60片", DIAPERS, 12900),
    _product("ND-103", "云柔 拉拉裤 L码 44片", DIAPERS, 11900),
    _product("ND-201", "棉小兜 超薄透气纸尿裤 M码 64片", DIAPERS, 9900),
    _product("FS-101", "禾小苗 高铁有机米粉 225g", BABY_FOOD, 4990),
    _product("FS-102", "禾小苗 有机果泥 6袋装", BABY_FOOD, 5900),
    _product("FS-103", "禾小苗 宝宝磨牙饼干 60g", BABY_FOOD, 3900),
    _product("MM-101", "水漾肌 玻尿酸补水面膜 10片/盒", FACE_MASK, 9900),
    _product("MM-102", "水漾肌 积雪草舒缓修护面膜 10片/盒", FACE_MASK, 10900),
    _product("MM-103", "水漾肌 烟酰胺亮肤面膜 5片/盒", FACE_MASK, 6900),
    _product("SK-101", "研初 烟酰胺焕亮精华液 30ml", SKINCARE, 26900),
    _product("SK-102", "研初 神经酰胺保湿乳 100ml", SKINCARE, 19900),
    _product("SK-103", "研初 氨基酸洁面乳 120g", SKINCARE, 8900),
    _product("SK-104", "研初 胜肽抗初老眼霜 15g", SKINCARE, 23900),
    _product("SK-105", "研初 清透防晒乳 SPF50+ 50ml", SKINCARE, 14900),
    _product("MU-101", "绯色 丝绒哑光口红 #316", MAKEUP, 14900),
    _product("MU-102", "绯色 轻薄持妆粉底液 30ml", MAKEUP, 22900),
    _product("MU-103", "绯色 大地色四色眼影盘", MAKEUP, 16900),
    _product("MU-104", "绯色 柔焦控油散粉", MAKEUP, 12900),
    _product("MU-105", "绯色 防水细芯眉笔", MAKEUP, 5900),
)

PRODUCTS_BY_SKU: Mapping[str, Product] = MappingProxyType({p.sku: p for p in PRODUCTS})

# sku → days one unit lasts; the data replenishment features read.
CONSUMPTION_CYCLE_DAYS: Mapping[str, int] = MappingProxyType(
    {p.sku: p.consumption_cycle_days for p in PRODUCTS})

_BY_CATEGORY: Mapping[str, tuple[Product, ...]] = MappingProxyType({
    category: tuple(p for p in PRODUCTS if p.category == category) for category in CATEGORY_CYCLE_DAYS
})


def products_in(category: str) -> tuple[Product, ...]:
    """The SKUs of one category, in catalogue order."""
    return _BY_CATEGORY[category]
