"""The console's templates: one Jinja2 environment per locale with its Babel catalogue, the formats
of the workspace (its time zone, money in fen shown as ¥) and the navigation later domains extend.

Template source strings are English; `locale/<lang>/LC_MESSAGES/messages.po` translates them. The
catalogues are compiled in memory when this module loads, so there is no build step.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import NoMatchFound

from siyu import __version__
from siyu.kit.clock import ensure_utc
from siyu.kit.timefmt import zone

TEMPLATES = Path(__file__).parent / "templates"
LOCALE_DIR = Path(__file__).parent / "locale"
LOCALES: dict[str, str] = {"zh_CN": "简体中文", "en": "English"}
DEFAULT_LOCALE = "zh_CN"
SESSION_LOCALE = "locale"
_ALIASES = {"zh": "zh_CN", "zh-cn": "zh_CN", "zh_cn": "zh_CN", "en": "en", "en-us": "en", "en_us": "en"}


def N_(message: str) -> str:
    """Mark a string for the catalogue; it is translated where it is shown."""
    return message


# -- navigation --------------------------------------------------------------------------------

@dataclass(frozen=True)
class NavEntry:
    """A sidebar entry, shown only once a route named `route` exists (the domain's console index)."""

    label: str
    route: str
    icon: str
    section: str


SECTIONS: dict[str, str] = {"customers": N_("Customers"), "engage": N_("Engagement"), "system": N_("System")}

NAV: list[NavEntry] = [
    NavEntry(N_("Dashboard"), "dashboard", "home", "customers"),
    NavEntry(N_("Customers"), "customers", "users", "customers"),
    NavEntry(N_("Identity links"), "identity_links", "link", "customers"),
    NavEntry(N_("Tags"), "tags", "tag", "customers"),
    NavEntry(N_("Segments"), "segments", "segments", "customers"),
    NavEntry(N_("Loyalty"), "loyalty", "star", "engage"),
    NavEntry(N_("Coupons"), "coupons", "ticket", "engage"),
    NavEntry(N_("Messaging"), "messaging", "message", "engage"),
    NavEntry(N_("Journeys"), "journeys", "route", "engage"),
    NavEntry(N_("Jobs"), "jobs", "queue", "system"),
]


def add_nav_entry(entry: NavEntry, *, before: str | None = None) -> None:
    """Let a domain add its page to the sidebar (once; `before` names an existing route)."""
    if any(e.route == entry.route for e in NAV):
        return
    index = next((i for i, e in enumerate(NAV) if e.route == before), len(NAV))
    NAV.insert(index, entry)


@dataclass(frozen=True)
class NavLink:
    label: str
    url: str
    icon: str
    active: bool


def navigation(request: Request) -> list[tuple[str, list[NavLink]]]:
    """The sidebar by section, with only the entries whose route this app has."""
    path = request.url.path
    sections: dict[str, list[NavLink]] = {}
    for entry in NAV:
        try:
            url = str(request.app.url_path_for(entry.route))
        except NoMatchFound:
            continue
        active = path == url if url == "/" else path == url or path.startswith(url + "/")
        sections.setdefault(entry.section, []).append(NavLink(entry.label, url, entry.icon, active))
    return [(SECTIONS.get(section, section), links) for section, links in sections.items()]


# -- labels of stored codes ----------------------------------------------------------------------

EVENT_LABELS: dict[str, str] = {
    "page_view": N_("Viewed a page"), "contact_added": N_("Added on WeCom"),
    "contact_deleted": N_("Removed from WeCom"), "message_received": N_("Sent a message"),
    "group_joined": N_("Joined a group"), "group_left": N_("Left a group"),
    "lead_submitted": N_("Submitted a lead form"), "form_submitted": N_("Submitted a form"),
    "order_paid": N_("Paid an order"), "order_refunded": N_("Refund"),
    "coupon_redeemed": N_("Redeemed a coupon"), "check_in": N_("Checked in"), "share": N_("Shared"),
    "identify": N_("Profile updated"), "segment_entered": N_("Entered a segment"),
    "segment_exited": N_("Left a segment"), "lifecycle_changed": N_("Lifecycle stage changed"),
    "tier_changed": N_("Membership tier changed"),
}
IDENTITY_LABELS: dict[str, str] = {
    "wecom_external_userid": N_("WeCom external user ID"), "wechat_unionid": N_("WeChat UnionID"),
    "wechat_openid": N_("WeChat OpenID"), "phone": N_("Phone"), "email": N_("Email"),
    "douyin_openid": N_("Douyin OpenID"), "xhs_userid": N_("Xiaohongshu user ID"),
    "app_user_id": N_("App user ID"), "member_no": N_("Member number"),
}
CHANNEL_LABELS: dict[str, str] = {
    "douyin": N_("Douyin"), "xiaohongshu": N_("Xiaohongshu"), "shipinhao": N_("WeChat Channels"),
    "tmall": N_("Tmall"), "jd": N_("JD.com"), "ads": N_("Ads"), "store": N_("Store"), "referral": N_("Referral"),
    "mini_program": N_("Mini program"), "app": N_("App"), "wecom": N_("WeCom"),
    "wechat_moments": N_("WeChat Moments"), "official_account": N_("Official account"),
}
JOB_STATE_LABELS: dict[str, str] = {
    "pending": N_("Pending"), "running": N_("Running"), "done": N_("Done"), "dead": N_("Dead letters"),
}
ROLE_LABELS: dict[str, str] = {
    "owner": N_("Owner"), "operator": N_("Operator"), "staff": N_("Staff"), "analyst": N_("Analyst"),
}
GENDER_LABELS: dict[str, str] = {"female": N_("Female"), "male": N_("Male"), "unknown": N_("Unknown")}
MERGE_REASON_LABELS: dict[str, str] = {
    "operator confirmed link": N_("Confirmed by an operator"), "shared strong identity": N_("Shared a strong identity"),
}
ORDER_STATUS_LABELS: dict[str, str] = {
    "paid": N_("Paid"), "refunded": N_("Refunded"), "partially_refunded": N_("Partly refunded"),
}


# -- formats -----------------------------------------------------------------------------------

EMPTY = "—"


def format_money(fen: int | None) -> str:
    """Integer fen as yuan: 123456 → ¥1,234.56."""
    if fen is None:
        return EMPTY
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}¥{yuan:,}.{cents:02d}"


def format_phone(value: str | None) -> str:
    """A mainland mobile in E.164 reads as +86 138 0013 8000; anything else is shown as stored."""
    if not value:
        return EMPTY
    if value.startswith("+86") and len(value) == 14 and value[3:].isdigit():
        return f"+86 {value[3:6]} {value[6:10]} {value[10:]}"
    return value


def format_number(value: int | None) -> str:
    return EMPTY if value is None else f"{value:,}"


def format_datetime(value: datetime | None, timezone: str, with_seconds: bool = False) -> str:
    if value is None:
        return EMPTY
    local = ensure_utc(value).astimezone(zone(timezone))
    return local.strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")


def format_date(value: datetime | date | None, timezone: str) -> str:
    if value is None:
        return EMPTY
    if isinstance(value, datetime):
        value = ensure_utc(value).astimezone(zone(timezone)).date()
    return value.isoformat()


@pass_context
def _datetime_filter(context: Context, value: datetime | None, with_seconds: bool = False) -> str:
    return format_datetime(value, context["timezone"], with_seconds)


@pass_context
def _date_filter(context: Context, value: datetime | date | None) -> str:
    return format_date(value, context["timezone"])


# -- catalogues and environments -------------------------------------------------------------

def load_translations(locale: str) -> gettext.NullTranslations:
    """Compile `locale/<locale>/LC_MESSAGES/messages.po` in memory; English is the source language."""
    po = LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return gettext.NullTranslations()
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=locale)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


def _labeller(translations: gettext.NullTranslations, labels: Mapping[str, str]) -> Callable[[str | None], str]:
    def label(code: str | None) -> str:
        if code is None or code == "":
            return EMPTY
        known = labels.get(code)
        return translations.gettext(known) if known is not None else code

    return label


def _build_environment(locale: str, translations: gettext.NullTranslations) -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(money=format_money, number=format_number, phone=format_phone, datetime=_datetime_filter,
                       date=_date_filter)
    env.globals.update(
        event_label=_labeller(translations, EVENT_LABELS), identity_label=_labeller(translations, IDENTITY_LABELS),
        channel_label=_labeller(translations, CHANNEL_LABELS), job_state_label=_labeller(translations,
                                                                                       JOB_STATE_LABELS),
        role_label=_labeller(translations, ROLE_LABELS), gender_label=_labeller(translations, GENDER_LABELS),
        order_status_label=_labeller(translations, ORDER_STATUS_LABELS),
        merge_reason_label=_labeller(translations, MERGE_REASON_LABELS), locales=LOCALES, version=__version__,
    )
    return env


TRANSLATIONS: dict[str, gettext.NullTranslations] = {locale: load_translations(locale) for locale in LOCALES}
ENVIRONMENTS: dict[str, Environment] = {locale: _build_environment(locale, TRANSLATIONS[locale])
                                        for locale in LOCALES}


def gettext_for(locale: str, message: str, **params: Any) -> str:
    text = TRANSLATIONS.get(locale, TRANSLATIONS[DEFAULT_LOCALE]).gettext(message)
    return text % params if params else text


# -- the locale of a request -------------------------------------------------------------------

def normalise_locale(value: str | None) -> str | None:
    if not value:
        return None
    if value in LOCALES:
        return value
    return _ALIASES.get(value.strip().lower())


def select_locale(request: Request, default: str = DEFAULT_LOCALE) -> str:
    """`?lang=` switches and is remembered in the session; otherwise the session's choice or the default."""
    asked = normalise_locale(request.query_params.get("lang"))
    if asked is not None:
        request.session[SESSION_LOCALE] = asked
        return asked
    return normalise_locale(request.session.get(SESSION_LOCALE)) or normalise_locale(default) or DEFAULT_LOCALE


def url_with_locale(request: Request, locale: str) -> str:
    """This page in another language (a list's cursor is dropped: the first page is shown again)."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("lang", "cursor")]
    params.append(("lang", locale))
    return f"{request.url.path}?{urlencode(params)}"


# -- flash messages ----------------------------------------------------------------------------

SESSION_FLASHES = "flashes"


def flash(request: Request, message: str, kind: str = "success", **params: Any) -> None:
    """Keep a message (an N_-marked msgid with %(name)s params) for the next full page."""
    request.session.setdefault(SESSION_FLASHES, []).append({"message": message, "kind": kind, "params": params})


def pop_flashes(request: Request) -> list[dict[str, Any]]:
    flashes: list[dict[str, Any]] = request.session.pop(SESSION_FLASHES, [])
    return flashes


def render(request: Request, template: str, context: Mapping[str, Any] | None = None, *,
           status_code: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """Render a console template in the request's locale, with the shell's context filled in.

    The shell (viewer, time zone, CSRF token, navigation) is what the console's dependencies put in
    `request.state.shell`; flash messages are shown on the next full page, never in a fragment.
    """
    locale = getattr(request.state, "locale", None) or DEFAULT_LOCALE
    is_htmx = request.headers.get("hx-request") == "true"
    base: dict[str, Any] = {"request": request, "locale": locale, "timezone": "Asia/Shanghai", "viewer": None,
                            "csrf_token": "", "nav": [], "is_htmx": is_htmx,
                            "flashes": [] if is_htmx else pop_flashes(request),
                            "locale_urls": {code: url_with_locale(request, code) for code in LOCALES}}
    base.update(getattr(request.state, "shell", {}))
    base.update(context or {})
    html = ENVIRONMENTS[locale].get_template(template).render(base)
    return HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))
