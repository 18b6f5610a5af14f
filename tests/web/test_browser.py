"""The console in a real browser: headless Chromium against the app served by uvicorn."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import Engine, select

from siyu.customers.models import Customer, IdentityLink
from siyu.customers.service import decide_link
from siyu.db.session import transaction
from siyu.workspaces.service import WorkspaceContext
from tests.factories import event, order
from tests.web.conftest import ingest, person, seed_linked_pair, sign_in

pytestmark = pytest.mark.browser


def test_wrong_password_shows_the_error_and_the_right_one_opens_the_dashboard(page: Any,
                                                                             owner: dict[str, str]) -> None:
    sign_in(page, owner["email"], "not-the-password")
    expect(page.locator("#login-error")).to_have_text("邮箱或密码错误。")
    expect(page).to_have_url(re.compile(r"/login$"))
    sign_in(page, owner["email"], owner["password"])
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("h1")).to_have_text("概览")
    expect(page.locator(".user .name")).to_have_text("店长")


def test_a_page_asked_for_before_login_opens_after_it(page: Any, owner: dict[str, str]) -> None:
    page.goto("/jobs")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fjobs$"))
    page.fill("input[name=email]", owner["email"])
    page.fill("input[name=password]", owner["password"])
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/jobs$"))
    expect(page.locator("h1")).to_have_text("任务队列")


def test_the_language_switch_changes_and_keeps_the_language(page: Any, owner: dict[str, str]) -> None:
    sign_in(page, owner["email"], owner["password"])
    expect(page.locator("h1")).to_have_text("概览")
    page.click(".lang-switch a[data-locale=en]")
    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.click("nav a[href='/customers']")
    expect(page.locator("h1")).to_have_text("Customers")
    page.click(".lang-switch a[data-locale=zh_CN]")
    expect(page.locator("h1")).to_have_text("客户")
    expect(page.locator("nav a.active")).to_have_text("客户")


def test_live_search_finds_a_customer_by_phone(page: Any, owner: dict[str, str], clean_engine: Engine,
                                               workspace: WorkspaceContext) -> None:
    results = ingest(clean_engine, workspace, [person(n) for n in range(1, 8)])
    sign_in(page, owner["email"], owner["password"])
    page.goto("/customers")
    expect(page.locator("tr[data-customer-id]")).to_have_count(7)
    page.fill("#customer-search", "138 0013 0005")
    rows = page.locator("tr[data-customer-id]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-customer-id", str(results[4].customer_id))
    expect(rows.first).to_contain_text("客户005")
    expect(rows.first).to_contain_text("+86 138 0013 0005")
    expect(page).to_have_url(re.compile(r"/customers\?q=138(\+|%20)0013(\+|%20)0005$"))
    rows.first.locator("td").nth(2).click()  # a click anywhere on the row opens the profile
    expect(page).to_have_url(re.compile(rf"/customers/{results[4].customer_id}$"))


def test_customer_detail_shows_identities_and_loads_older_events(page: Any, owner: dict[str, str],
                                                                  clean_engine: Engine,
                                                                  workspace: WorkspaceContext) -> None:
    ingest(clean_engine, workspace, [person(1)] + [
        event("page_view", id=f"pv-{i}", at=f"2026-11-{2 + i // 24:02d}T{i % 24:02d}:05:00+08:00",
              identities={"wechat_unionid": "u-1"}, properties={"page": f"/goods/{i}", "title": f"商品 {i}"})
        for i in range(64)] + [order("O-88", unionid="u-1", at="2026-11-10T20:00:00+08:00")])
    sign_in(page, owner["email"], owner["password"])
    page.goto("/customers?q=u-1")
    page.click("tr[data-customer-id] a")
    expect(page.locator("h1")).to_have_text("客户001")
    identities = page.locator("#identities li")
    expect(identities).to_have_count(2)
    expect(page.locator("#identities")).to_contain_text("+8613800130001")
    expect(page.locator("#identities")).to_contain_text("微信 UnionID")
    expect(page.locator("#orders tr[data-order-id]")).to_have_count(1)
    items = page.locator("#timeline-items li[data-event-id]")
    expect(items).to_have_count(50)
    expect(items.first).to_contain_text("支付订单")
    if target := os.environ.get("SIYU_SCREENSHOTS"):  # for a person to look at; never committed
        page.screenshot(path=str(Path(target) / "customer-detail.zh_CN.png"))
    page.click("#timeline-more button")
    expect(items).to_have_count(66)
    expect(items.last).to_contain_text("资料更新")
    expect(page.locator("#timeline-more")).to_have_count(0)


def test_a_post_without_the_csrf_token_is_refused(page: Any, owner: dict[str, str], clean_engine: Engine,
                                                  workspace: WorkspaceContext) -> None:
    seed_linked_pair(clean_engine, workspace)
    sign_in(page, owner["email"], owner["password"])
    page.goto("/identity-links")
    link_id = page.locator("[data-link-id]").first.get_attribute("data-link-id")
    refused = page.request.post(f"/identity-links/{link_id}/confirm")
    assert refused.status == 403
    forged = page.request.post(f"/identity-links/{link_id}/confirm", headers={"X-CSRF-Token": "forged"})
    assert forged.status == 403
    with transaction(clean_engine) as session:
        assert session.scalar(select(IdentityLink.status).where(IdentityLink.id == int(link_id or 0))) == "pending"


def test_confirming_an_identity_link_merges_the_two_profiles(page: Any, owner: dict[str, str],
                                                             clean_engine: Engine,
                                                             workspace: WorkspaceContext) -> None:
    pair = seed_linked_pair(clean_engine, workspace)
    sign_in(page, owner["email"], owner["password"])
    page.click("nav a[href='/identity-links']")
    card = page.locator("section[data-link-id]")
    expect(card.locator(".pair-side")).to_have_count(2)
    expect(card).to_contain_text("林小雨")
    page.once("dialog", lambda dialog: dialog.accept())
    card.locator("button[data-action=confirm]").click()
    expect(card).to_have_attribute("data-link-status", "confirmed")
    expect(card).to_contain_text(f"两个档案已合并为 #{pair.first_id}。")
    with transaction(clean_engine) as session:
        assert session.scalar(select(Customer.merged_into_id).where(Customer.id == pair.second_id)) == pair.first_id
    card.locator("a").click()
    expect(page.locator("#merges")).to_contain_text(f"#{pair.second_id} → #{pair.first_id}")
    expect(page.locator("#orders tr[data-order-id]")).to_have_count(1)  # the absorbed profile's order moved


def test_a_failed_htmx_action_shows_the_reason(page: Any, owner: dict[str, str], clean_engine: Engine,
                                               workspace: WorkspaceContext) -> None:
    seed_linked_pair(clean_engine, workspace)
    sign_in(page, owner["email"], owner["password"])
    page.goto("/identity-links")
    link_id = int(page.locator("[data-link-id]").first.get_attribute("data-link-id") or 0)
    with transaction(clean_engine) as session:  # someone else decides it meanwhile
        decide_link(session, workspace, link_id, confirm=False, actor="user:other")
    page.click("button[data-action=reject]")
    expect(page.locator("#toasts .toast")).to_contain_text("这条匹配已经处理过了。")
    expect(page.locator("section[data-link-id]")).to_have_count(1)
