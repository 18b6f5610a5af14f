"""The identities a demo customer is known by, and which of them each event carries.

Every identity value is unique to one customer of one seed (phones and member numbers by
construction, the hashed ids by a 160-bit digest), so the only profiles the engine ever has to merge
are the planned merge cases.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import cache
from typing import Any

MINI_PROGRAM_APPID = "wx5d3a9c1b7e2f4a60"  # the brand's 小程序, namespace of its openids
_MOBILE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "153", "155",
    "156", "157", "158", "159", "166", "177", "180", "181", "182", "183", "185", "186", "187", "188",
    "189", "198", "199",
)

# Which identity types an event seen through each touchpoint carries, besides the anchor.
# "phone_unverified" is a phone the customer typed without an SMS check.
_VIA_TYPES: dict[str, tuple[str, ...]] = {
    "wecom": ("wecom_external_userid", "wechat_unionid"),
    "mini_program": ("wechat_unionid", "wechat_openid"),
    "app": ("app_user_id",),
    "survey": ("wechat_unionid", "wechat_openid", "phone_unverified", "email"),
    "member_link": ("wechat_unionid", "phone", "member_no"),
    "douyin": ("douyin_openid",),
    "xiaohongshu": ("xhs_userid",),
    "shipinhao": ("wechat_unionid",),
    "ads": ("wechat_openid",),
    "tmall": ("phone",),
    "jd": ("phone",),
    "store": ("phone",),
}
# Touchpoints that know the member number once the customer has registered (注册会员).
_MEMBER_VIAS = frozenset({"mini_program", "tmall", "store", "member_link"})
MERGE_SET_A = ("phone", "douyin_openid")
_MERGE_SET_B_EXCLUDES = frozenset({"phone", "phone_unverified", "douyin_openid", "member_no", "email"})


@dataclass(frozen=True, slots=True)
class CustomerIds:
    wechat_unionid: str
    wechat_openid: str
    wecom_external_userid: str
    douyin_openid: str
    xhs_userid: str
    phone: str
    member_no: str
    app_user_id: str
    email: str

    @classmethod
    def derive(cls, seed: int, index: int) -> CustomerIds:
        digest = hashlib.blake2b(f"siyu-demo:{seed}:{index}".encode(), digest_size=64).digest()
        # A bijection of index below 10**8 (the multiplier is prime to 10): phones never collide.
        suffix = (index * 7_654_321 + seed * 104_729) % 10**8
        return cls(
            wechat_unionid="o" + _b64(digest[0:21])[:27],
            wechat_openid="o" + _b64(digest[21:42])[:27],
            wecom_external_userid="wm" + _b64(digest[42:64])[:30],
            douyin_openid="_000" + digest[0:16].hex(),
            xhs_userid=digest[16:28].hex(),
            phone=f"+86{_MOBILE_PREFIXES[digest[63] % len(_MOBILE_PREFIXES)]}{suffix:08d}",
            member_no=f"XL{(index * 7_919 + seed) % 10**10:010d}",
            app_user_id=f"{seed % 1000:03d}{index:09d}",
            email=f"xl{index:07d}.{digest[30:33].hex()}@example.com",
        )

    def identity(self, kind: str) -> dict[str, Any]:
        if kind == "phone":
            return {"type": "phone", "value": self.phone, "verified": True}
        if kind == "phone_unverified":
            return {"type": "phone", "value": self.phone, "verified": False}
        if kind == "wechat_openid":
            return {"type": "wechat_openid", "value": self.wechat_openid, "namespace": MINI_PROGRAM_APPID}
        value: str = getattr(self, kind)
        return {"type": kind, "value": value}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@cache
def _kinds(anchor: str, via: str, member: bool, email: bool, excluded: frozenset[str]) -> tuple[str, ...]:
    wanted = [anchor, *_VIA_TYPES[via]]
    if member and via in _MEMBER_VIAS:
        wanted.append("member_no")
    kinds: list[str] = []
    seen: set[str] = set()
    for kind in wanted:
        real = "phone" if kind == "phone_unverified" else kind
        if kind in excluded or real in seen or (kind == "email" and not email):
            continue
        seen.add(real)
        kinds.append(kind)
    return tuple(kinds)


@dataclass(slots=True)
class IdentityPolicy:
    """Decides the identity list of each event of one customer.

    An ordinary customer's events all carry `anchor` (a strong identity) plus what the touchpoint
    knows. A merge case (`split_ts` set) carries only MERGE_SET_A before `split_ts`, only its
    unionid-anchored set B (no phone, douyin, member number) until `link_ts`, and from the link on
    everything: the link event itself carries unionid + phone + member_no.
    """

    ids: CustomerIds
    anchor: str
    has_email: bool
    member_since: int | None = None
    split_ts: int | None = None
    link_ts: int | None = None

    def identities(self, via: str, ts: int) -> list[dict[str, Any]]:
        return [self.ids.identity(kind) for kind in self._kinds_at(via, ts)]

    def _kinds_at(self, via: str, ts: int) -> tuple[str, ...]:
        member = self.member_since is not None and ts >= self.member_since
        if self.split_ts is None or self.link_ts is None:
            return _kinds(self.anchor, via, member, self.has_email, frozenset())
        if ts < self.split_ts:
            return MERGE_SET_A
        if ts < self.link_ts:
            return _kinds("wechat_unionid", via, False, False, _MERGE_SET_B_EXCLUDES)
        return _kinds("wechat_unionid", via, member, self.has_email, frozenset())
