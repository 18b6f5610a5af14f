"""Formats, message catalogues and the navigation of the console."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from fastapi.responses import HTMLResponse
from starlette.routing import NoMatchFound

from siyu.web import templating
from siyu.web.templating import (
    NAV,
    NavEntry,
    add_nav_entry,
    format_date,
    format_datetime,
    format_money,
    format_phone,
    gettext_for,
    normalise_locale,
)
from tests.web.conftest import Console

WEB = Path(templating.__file__).parent
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def test_money_is_yuan_from_integer_fen() -> None:
    assert format_money(0) == "¥0.00"
    assert format_money(5) == "¥0.05"
    assert format_money(29800) == "¥298.00"
    assert format_money(123456789) == "¥1,234,567.89"
    assert format_money(-1999) == "-¥19.99"
    assert format_money(None) == "—"


def test_times_are_shown_in_the_workspace_zone() -> None:
    at = datetime(2026, 11, 19, 23, 30, tzinfo=UTC)
    assert format_datetime(at, "Asia/Shanghai") == "2026-11-20 07:30"
    assert format_datetime(at, "Europe/London", with_seconds=True) == "2026-11-19 23:30:00"
    assert format_datetime(datetime(2026, 11, 19, 23, 30), "Asia/Shanghai") == "2026-11-20 07:30"  # naive = UTC
    assert format_date(at, "Asia/Shanghai") == "2026-11-20"
    assert format_date(date(1990, 5, 17), "Asia/Shanghai") == "1990-05-17"
    assert format_datetime(None, "Asia/Shanghai") == format_date(None, "Asia/Shanghai") == "—"


def test_mainland_mobiles_are_grouped_other_numbers_kept() -> None:
    assert format_phone("+8613800138000") == "+86 138 0013 8000"
    assert format_phone("+85291234567") == "+85291234567"
    assert format_phone(None) == "—"


def test_locales_accept_common_spellings() -> None:
    assert [normalise_locale(v) for v in ("zh_CN", "zh-CN", "zh", "en", "en-US", "fr", "", None)] == [
        "zh_CN", "zh_CN", "zh_CN", "en", "en", None, None, None]


def test_python_messages_translate_with_params() -> None:
    assert gettext_for("zh_CN", "Job #%(id)s is queued again.", id=7) == "任务 #7 已重新排队。"
    assert gettext_for("en", "Job #%(id)s is queued again.", id=7) == "Job #7 is queued again."


def test_the_chinese_catalogue_translates_every_console_message() -> None:
    """Every string marked in templates and console code has a zh_CN translation with the same placeholders
    (extracted as locale/babel.cfg says, so domain consoles and their templates are held to it too)."""
    with (WEB / "locale" / "babel.cfg").open() as config:
        method_map, options = parse_mapping_cfg(config)
    used = {message for _file, _line, message, _comments, _context in
            extract_from_dir(str(WEB.parent), method_map, options, keywords=DEFAULT_KEYWORDS)}
    with (WEB / "locale" / "zh_CN" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalogue = {(m.id[0] if isinstance(m.id, tuple) else m.id): m for m in read_po(handle, locale="zh_CN") if m.id}
    used_ids = {m[0] if isinstance(m, tuple) else m for m in used}
    assert len(used_ids) > 150
    assert sorted(i for i in used_ids if i not in catalogue) == []
    for msg_id in used_ids:
        entry = catalogue[msg_id]
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        assert all(strings) and not entry.fuzzy, msg_id
        source = entry.id[0] if isinstance(entry.id, tuple) else entry.id
        for text in strings:
            assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(source)), msg_id


def _nav_hrefs(html: str) -> list[str]:
    nav = html[html.index('<nav class="nav"'):html.index("</nav>")]
    return re.findall(r'href="([^"]+)"', nav)


def _path(app: Any, route: str) -> str | None:
    try:
        return str(app.url_path_for(route))
    except NoMatchFound:
        return None


def _expected_nav(app: Any) -> list[str]:
    """The sidebar in NAV order, for the entries whose route this app has (whatever domains exist)."""
    return [path for e in NAV if (path := _path(app, e.route)) is not None]


def test_navigation_shows_only_sections_whose_page_exists(app: Any, console: Console) -> None:
    html = console.get("/customers").text
    hrefs = _nav_hrefs(html)
    assert hrefs == _expected_nav(app)
    assert hrefs[:3] == ["/", "/customers", "/identity-links"] and hrefs[-1] == "/jobs"
    assert 'href="/customers" class="active" aria-current="page"' in html
    missing = [e for e in NAV if _path(app, e.route) is None]
    for entry in missing:
        assert f'href="/{entry.route}"' not in html


def test_a_domain_page_appears_in_the_navigation_once_its_route_exists(app: Any, console: Console) -> None:
    before = _nav_hrefs(console.get("/").text)
    add_nav_entry(NavEntry("Reports", "reports-test", "activity", "system"), before="jobs")
    try:
        assert "/reports-test" not in _nav_hrefs(console.get("/").text)
        app.add_api_route("/reports-test", lambda: HTMLResponse("reports"), name="reports-test")
        after = _nav_hrefs(console.get("/").text)
        assert after == [*before[:-1], "/reports-test", before[-1]]
    finally:
        NAV[:] = [e for e in NAV if e.route != "reports-test"]


def test_a_new_entry_is_added_once_where_asked() -> None:
    before = list(NAV)
    try:
        entry = NavEntry("Reports", "reports", "activity", "system")
        add_nav_entry(entry, before="jobs")
        add_nav_entry(entry, before="jobs")
        assert [e.route for e in NAV].count("reports") == 1
        assert [e.route for e in NAV].index("reports") == [e.route for e in NAV].index("jobs") - 1
    finally:
        NAV[:] = before
