"""Console pages through the ASGI app: sessions, CSRF, roles, and what each page shows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, func, select, update

from siyu.customers.models import Customer, IdentityLink
from siyu.db.session import transaction
from siyu.jobs.models import Job
from siyu.jobs.service import enqueue
from siyu.workspaces.service import WorkspaceContext
from tests.factories import event as make_event
from tests.factories import order
from tests.web.conftest import Console, csrf_from, ingest, login, person, seed_linked_pair

PAGES = ["/", "/customers", "/customers/1", "/identity-links", "/jobs"]


def rows_of(html: str) -> list[int]:
    return [int(cid) for cid in re.findall(r'data-customer-id="(\d+)"', html)]


# -- sessions ---------------------------------------------------------------------------------

def test_every_page_sends_a_stranger_to_login_with_the_way_back(app: Any) -> None:
    with TestClient(app) as client:
        for path in PAGES:
            response = client.get(path, follow_redirects=False)
            assert response.status_code == 303, path
            assert response.headers["location"] == "/login?next=" + path.replace("/", "%2F"), path


def test_an_htmx_request_without_session_is_redirected_by_header(app: Any) -> None:
    with TestClient(app) as client:
        response = client.get("/customers?q=x", headers={"HX-Request": "true",
                                                         "HX-Current-URL": "http://testserver/customers"})
    assert response.status_code == 204
    assert response.headers["hx-redirect"] == "/login?next=%2Fcustomers"


def test_wrong_password_shows_the_error_and_opens_no_session(app: Any, owner: dict[str, str]) -> None:
    with TestClient(app) as client:
        token = csrf_from(client.get("/login").text)
        response = client.post("/login", data={"email": owner["email"], "password": "wrong-horse",
                                               "csrf_token": token})
        assert response.status_code == 401
        assert 'id="login-error"' in response.text
        assert "邮箱或密码错误。" in response.text
        assert f'value="{owner["email"]}"' in response.text
        assert client.get("/", follow_redirects=False).status_code == 303


def test_login_lands_on_next_but_never_off_site(app: Any, owner: dict[str, str]) -> None:
    for asked, landed in [("/customers?q=1", "/customers?q=1"), ("//evil.example/x", "/"),
                          ("https://evil.example/", "/"), ("/\\evil.example", "/")]:
        with TestClient(app) as client:
            token = csrf_from(client.get("/login").text)
            response = client.post("/login", data={**owner, "csrf_token": token, "next": asked},
                                   follow_redirects=False)
            assert response.status_code == 303
            assert response.headers["location"] == landed, asked


def test_logout_ends_the_session(console: Console) -> None:
    response = console.post("/logout")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert console.get("/", follow_redirects=False).status_code == 303


def test_a_signed_in_user_visiting_login_goes_to_next(console: Console) -> None:
    response = console.get("/login?next=/jobs", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/jobs"


# -- CSRF -------------------------------------------------------------------------------------

def test_post_without_csrf_token_is_403_and_changes_nothing(console: Console, clean_engine: Engine,
                                                             workspace: WorkspaceContext) -> None:
    pair = seed_linked_pair(clean_engine, workspace)
    link_id = _pending_link_id(clean_engine)
    no_token = console.client.post(f"/identity-links/{link_id}/confirm", follow_redirects=False)
    wrong_token = console.client.post(f"/identity-links/{link_id}/confirm", data={"csrf_token": "forged"},
                                      follow_redirects=False)
    wrong_header = console.client.post(f"/identity-links/{link_id}/confirm",
                                       headers={"HX-Request": "true", "X-CSRF-Token": "forged"})
    assert [no_token.status_code, wrong_token.status_code, wrong_header.status_code] == [403, 403, 403]
    assert 'data-error-code="csrf_failed"' in wrong_header.text
    assert "csrf_failed" in no_token.text
    with transaction(clean_engine) as session:
        assert session.scalar(select(IdentityLink.status).where(IdentityLink.id == link_id)) == "pending"
        assert session.scalar(select(Customer.merged_into_id).where(Customer.id == pair.second_id)) is None


def test_login_and_logout_need_the_token_too(app: Any, owner: dict[str, str]) -> None:
    with TestClient(app) as client:
        client.get("/login")
        refused = client.post("/login", data=owner, follow_redirects=False)
        assert refused.status_code == 403
        assert client.get("/", follow_redirects=False).status_code == 303
        login(client, owner["email"], owner["password"])
        assert client.post("/logout", follow_redirects=False).status_code == 403
        assert client.get("/", follow_redirects=False).status_code == 200


def test_the_token_changes_at_login(app: Any, owner: dict[str, str]) -> None:
    with TestClient(app) as client:
        before = csrf_from(client.get("/login").text)
        after = login(client, owner["email"], owner["password"])
    assert before != after


def test_pages_carry_the_token_for_htmx_on_body(console: Console) -> None:
    html = console.get("/").text
    assert f'hx-headers=\'{{"X-CSRF-Token": "{console.token}"}}\'' in html


def test_the_api_refuses_a_session_write_without_the_token(console: Console, clean_engine: Engine) -> None:
    body = make_event(id="from-session")
    assert console.client.post("/api/v1/events", json=body).status_code == 403
    with transaction(clean_engine) as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 0
    assert console.client.get("/api/v1/customers").status_code == 200
    sent = console.client.post("/api/v1/events", json=body, headers={"X-CSRF-Token": console.token})
    assert sent.status_code == 201


# -- roles ------------------------------------------------------------------------------------

def test_analyst_reads_every_page_but_cannot_decide_or_retry(console_as: Any, clean_engine: Engine,
                                                              workspace: WorkspaceContext) -> None:
    pair = seed_linked_pair(clean_engine, workspace)
    link_id = _pending_link_id(clean_engine)
    job_id = _dead_job(clean_engine, workspace.id)
    analyst = console_as("analyst")
    for path in ["/", "/customers", f"/customers/{pair.first_id}", "/identity-links", "/jobs"]:
        assert analyst.get(path).status_code == 200, path
    links_page = analyst.get("/identity-links").text
    assert 'data-action="confirm"' not in links_page and 'data-action="reject"' not in links_page
    assert f"/jobs/{job_id}/retry" not in analyst.get("/jobs").text
    assert analyst.post(f"/identity-links/{link_id}/confirm").status_code == 403
    assert analyst.post(f"/jobs/{job_id}/retry").status_code == 403
    with transaction(clean_engine) as session:
        assert session.scalar(select(IdentityLink.status).where(IdentityLink.id == link_id)) == "pending"
        assert session.scalar(select(Job.state).where(Job.id == job_id)) == "dead"


def test_operator_sees_the_decision_buttons(console_as: Any, clean_engine: Engine,
                                            workspace: WorkspaceContext) -> None:
    seed_linked_pair(clean_engine, workspace)
    page = console_as("operator").get("/identity-links").text
    assert page.count('data-action="confirm"') == 1 and page.count('data-action="reject"') == 1


# -- language ---------------------------------------------------------------------------------

def test_chinese_by_default_english_on_request_and_remembered(console: Console) -> None:
    assert '<html lang="zh-CN">' in console.get("/").text
    assert "<h1>概览</h1>" in console.get("/").text
    english = console.get("/customers?lang=en").text
    assert '<html lang="en">' in english and "<h1>Customers</h1>" in english
    assert "<h1>Dashboard</h1>" in console.get("/").text
    assert "<h1>概览</h1>" in console.get("/?lang=zh_CN").text


def test_language_choice_survives_login(app: Any, owner: dict[str, str]) -> None:
    with TestClient(app) as client:
        page = client.get("/login?lang=en").text
        assert "Sign in to your workspace" in page
        login(client, owner["email"], owner["password"])
        assert "<h1>Dashboard</h1>" in client.get("/").text


def test_the_switch_links_keep_the_page_and_its_search(console: Console) -> None:
    html = console.get("/customers?q=%E6%9E%97").text
    assert 'href="/customers?q=%E6%9E%97&amp;lang=en"' in html
    assert 'href="/customers?q=%E6%9E%97&amp;lang=zh_CN"' in html


# -- dashboard --------------------------------------------------------------------------------

def test_dashboard_counts_the_workspace_only(console: Console, clean_engine: Engine, workspace: WorkspaceContext,
                                             other_workspace: WorkspaceContext) -> None:
    ingest(clean_engine, workspace, [person(1), person(2), order("D-1", unionid="u-1"),
                                     order("D-2", unionid="u-1", total_fen=12345, items=[
                                         {"sku": "x", "category": "美妆", "quantity": 1, "unit_price_fen": 12345}])])
    ingest(clean_engine, other_workspace, [person(7), order("R-1", unionid="u-7")])
    html = console.get("/").text
    assert _stat(html, "customers") == "2"
    assert _stat(html, "orders") == "2"
    assert _stat(html, "events") == "4"
    assert "¥421.45" in html  # 298.00 + 123.45


def test_dashboard_counts_new_customers_by_local_day(console: Console, clean_engine: Engine,
                                                     workspace: WorkspaceContext) -> None:
    # The clock stands at 2026-11-20 12:00 in Shanghai; 23:30 UTC on the 18th is the 19th there.
    ingest(clean_engine, workspace, [
        make_event(id="a", at="2026-11-18T23:30:00+00:00", identities={"wechat_unionid": "a"}),
        make_event(id="b", at="2026-11-19T08:00:00+08:00", identities={"wechat_unionid": "b"}),
        make_event(id="c", at="2026-11-20T09:00:00+08:00", identities={"wechat_unionid": "c"}),
        make_event(id="d", at="2026-10-21T23:59:00+08:00", identities={"wechat_unionid": "d"}),  # 31 days ago
        make_event(id="e", at="2026-10-22T00:00:00+08:00", identities={"wechat_unionid": "e"}),  # first day shown
    ])
    html = console.get("/").text
    days = dict(re.findall(r'data-day="([\d-]+)" data-count="(\d+)"', html))
    assert len(days) == 30
    assert {day: count for day, count in days.items() if count != "0"} == {
        "2026-10-22": "1", "2026-11-19": "2", "2026-11-20": "1"}
    assert _stat(html, "new-customers") == "4"


# -- customers list ---------------------------------------------------------------------------

def test_customer_search_by_phone_name_identity_and_number(console: Console, clean_engine: Engine,
                                                           workspace: WorkspaceContext) -> None:
    results = ingest(clean_engine, workspace, [person(n) for n in range(1, 6)])
    ids = {n: r.customer_id for n, r in zip(range(1, 6), results, strict=True)}
    assert rows_of(console.get("/customers?q=13800130003").text) == [ids[3]]
    assert rows_of(console.get("/customers?q=%2B8613800130003").text) == [ids[3]]
    assert rows_of(console.get("/customers?q=客户004").text) == [ids[4]]
    assert rows_of(console.get("/customers?q=u-2").text) == [ids[2]]
    assert rows_of(console.get(f"/customers?q={ids[5]}").text) == [ids[5]]
    assert rows_of(console.get("/customers").text) == sorted(ids.values(), reverse=True)
    nothing = console.get("/customers?q=nobody")
    assert rows_of(nothing.text) == [] and "没有与“nobody”匹配的客户。" in nothing.text


def test_live_search_answers_with_rows_only(console: Console, clean_engine: Engine,
                                            workspace: WorkspaceContext) -> None:
    ingest(clean_engine, workspace, [person(1), person(2)])
    fragment = console.get("/customers?q=客户002", headers={"HX-Request": "true"}).text
    assert fragment.lstrip().startswith("<tr") and "<html" not in fragment
    assert len(rows_of(fragment)) == 1
    restore = console.get("/customers?q=客户002", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restore.text


def test_customer_list_pages_by_cursor(console: Console, clean_engine: Engine, workspace: WorkspaceContext) -> None:
    ingest(clean_engine, workspace, [person(n) for n in range(1, 56)])
    first = console.get("/customers").text
    assert len(rows_of(first)) == 50
    more = re.search(r'id="customers-more">\s*<td colspan="7">\s*<a class="btn btn-sm" href="([^"]+)"', first)
    assert more is not None
    second = console.get(more.group(1).replace("&amp;", "&"), headers={"HX-Request": "true"}).text
    assert len(rows_of(second)) == 5
    assert set(rows_of(first)).isdisjoint(rows_of(second))
    assert "customers-more" not in second


def test_customer_rows_show_rollups_without_a_query_per_row(console: Console, clean_engine: Engine,
                                                            workspace: WorkspaceContext) -> None:
    ingest(clean_engine, workspace, [person(n) for n in range(1, 4)] + [order("Q-1", unionid="u-2")])
    few = _count_queries(clean_engine, lambda: console.get("/customers"))
    ingest(clean_engine, workspace, [person(n) for n in range(4, 41)])
    html = console.get("/customers").text
    many = _count_queries(clean_engine, lambda: console.get("/customers"))
    assert many == few
    row = html[html.index('data-customer-id="2"'):]
    row = row[:row.index("</tr>")]
    assert ">1</td>" in row and "¥298.00" in row and "+86 138 0013 0002" in row and "抖音" in row


# -- customer detail --------------------------------------------------------------------------

def test_customer_detail_shows_profile_identities_rollups_orders_and_timeline(
        console: Console, clean_engine: Engine, workspace: WorkspaceContext) -> None:
    ingest(clean_engine, workspace, [
        person(1, email="lin@example.com"),
        order("O-1", unionid="u-1", at="2026-10-01T10:00:00+08:00"),
        order("O-2", unionid="u-1", at="2026-10-20T10:00:00+08:00", items=[
            {"sku": "MASK", "name": "面膜", "category": "美妆/面膜", "quantity": 2, "unit_price_fen": 9900}]),
        make_event("message_received", id="m-1", at="2026-10-21T09:00:00+08:00", identities={"wechat_unionid": "u-1"},
                   properties={"text": "<b>还有货吗</b>"}),
    ])
    customer_id = _customer_id(clean_engine, "u-1")
    html = console.get(f"/customers/{customer_id}").text
    assert 'data-identity-type="phone"' in html and 'data-identity-type="wechat_unionid"' in html
    assert "+8613800130001" in html and "u-1" in html
    assert _metric(html, "orders") == "2"
    assert _metric(html, "spend") == "¥496.00"
    assert _metric(html, "aov") == "¥248.00"
    assert _metric(html, "first-order") == "2026-10-01"
    assert _metric(html, "last-order") == "2026-10-20"
    assert 'data-category="母婴/奶粉">母婴/奶粉 · 1 单' in html and 'data-category="美妆/面膜">美妆/面膜 · 1 单' in html
    assert html.index('data-order-id="O-2"') < html.index('data-order-id="O-1"')
    types = re.findall(r'data-event-type="(\w+)"', html)
    assert types == ["identify", "message_received", "order_paid", "order_paid"]
    assert "&lt;b&gt;还有货吗&lt;/b&gt;" in html  # customer text is escaped
    assert "2026-10-20 10:00" in html  # shown in the workspace's zone


def test_timeline_loads_fifty_at_a_time_newest_first(console: Console, clean_engine: Engine,
                                                     workspace: WorkspaceContext) -> None:
    ingest(clean_engine, workspace, [
        make_event(id=f"pv-{i:03d}", at=f"2026-11-{1 + i // 24:02d}T{i % 24:02d}:00:00+08:00",
                   identities={"wechat_unionid": "u-1"}, properties={"page": f"/p/{i}"}) for i in range(120)])
    customer_id = _customer_id(clean_engine, "u-1")
    html = console.get(f"/customers/{customer_id}").text
    pages = [re.findall(r'data-event-id="(\d+)"', html)]
    while (more := re.search(r'hx-get="(/customers/\d+/timeline\?before=\d+)"', html)) is not None:
        html = console.get(more.group(1), headers={"HX-Request": "true"}).text
        pages.append(re.findall(r'data-event-id="(\d+)"', html))
    assert [len(p) for p in pages] == [50, 50, 20]
    assert len({event_id for page in pages for event_id in page}) == 120
    shown = re.findall(r'/p/(\d+)', "".join(console.get(f"/customers/{customer_id}").text.split("timeline-items")[1:]))
    assert [int(n) for n in shown[:3]] == [119, 118, 117]


def test_an_absorbed_id_shows_its_survivor_with_a_notice(console: Console, clean_engine: Engine,
                                                        workspace: WorkspaceContext) -> None:
    pair = seed_linked_pair(clean_engine, workspace)
    console.post(f"/identity-links/{_pending_link_id(clean_engine)}/confirm")
    html = console.get(f"/customers/{pair.second_id}").text
    assert 'id="merged-notice"' in html
    assert f"档案 #{pair.second_id} 已合并到此档案。" in html
    assert "<h1>小雨</h1>" in html  # the newer profile's name wins the merge
    assert f"客户 #{pair.first_id}" in html
    assert f"#{pair.second_id} → #{pair.first_id}" in html
    assert 'id="merged-notice"' not in console.get(f"/customers/{pair.first_id}").text


def test_a_customer_of_another_workspace_is_not_found(console: Console, clean_engine: Engine,
                                                      other_workspace: WorkspaceContext) -> None:
    results = ingest(clean_engine, other_workspace, [person(9)])
    response = console.get(f"/customers/{results[0].customer_id}")
    assert response.status_code == 404
    assert "当前工作区中没有这位客户。" in response.text and "客户009" not in response.text
    assert console.get(f"/customers/{results[0].customer_id}/timeline").status_code == 404


def test_a_bad_cursor_or_id_is_a_page_not_a_crash(console: Console) -> None:
    assert console.get("/customers?cursor=%%%").status_code == 422
    response = console.get("/customers/not-a-number")
    assert response.status_code == 422 and "<html" in response.text


# -- identity links ---------------------------------------------------------------------------

def test_links_page_shows_both_profiles_side_by_side(console: Console, clean_engine: Engine,
                                                     workspace: WorkspaceContext) -> None:
    pair = seed_linked_pair(clean_engine, workspace)
    html = console.get("/identity-links").text
    card = html[html.index('data-link-id="'):]
    assert card.count('class="pair-side"') == 2
    assert card.index(f'data-customer-id="{pair.first_id}"') < card.index(f'data-customer-id="{pair.second_id}"')
    assert "林小雨" in card and "小雨" in card and "+8613900139000" in card
    assert "1 条待确认" in html


def test_confirming_a_link_merges_the_profiles(console: Console, clean_engine: Engine,
                                               workspace: WorkspaceContext) -> None:
    pair = seed_linked_pair(clean_engine, workspace)
    link_id = _pending_link_id(clean_engine)
    response = console.post(f"/identity-links/{link_id}/confirm", htmx=True)
    assert response.status_code == 200
    assert 'data-link-status="confirmed"' in response.text
    assert f"两个档案已合并为 #{pair.first_id}。" in response.text
    with transaction(clean_engine) as session:
        assert session.scalar(select(Customer.merged_into_id).where(Customer.id == pair.second_id)) == pair.first_id
        assert session.scalar(select(IdentityLink.decided_by).where(IdentityLink.id == link_id)).startswith("user:")
    assert 'data-link-id' not in console.get("/identity-links").text


def test_rejecting_a_link_keeps_them_apart_and_says_so_on_the_next_page(console: Console, clean_engine: Engine,
                                                                       workspace: WorkspaceContext) -> None:
    pair = seed_linked_pair(clean_engine, workspace)
    link_id = _pending_link_id(clean_engine)
    response = console.post(f"/identity-links/{link_id}/reject")
    assert response.status_code == 303 and response.headers["location"] == "/identity-links"
    page = console.get("/identity-links").text
    assert f"档案 #{pair.second_id} 与 #{pair.first_id} 保持独立。" in page
    assert "data-flash" in page and "data-flash" not in console.get("/identity-links").text  # shown once
    with transaction(clean_engine) as session:
        assert session.scalar(select(IdentityLink.status).where(IdentityLink.id == link_id)) == "rejected"
        assert session.scalar(select(func.count()).select_from(Customer).where(
            Customer.merged_into_id.is_not(None))) == 0


def test_deciding_twice_is_a_conflict_not_a_crash(console: Console, clean_engine: Engine,
                                                  workspace: WorkspaceContext) -> None:
    seed_linked_pair(clean_engine, workspace)
    link_id = _pending_link_id(clean_engine)
    assert console.post(f"/identity-links/{link_id}/reject", htmx=True).status_code == 200
    again = console.post(f"/identity-links/{link_id}/confirm", htmx=True)
    assert again.status_code == 409
    assert 'data-error-code="link_already_decided"' in again.text and "这条匹配已经处理过了。" in again.text
    with transaction(clean_engine) as session:
        assert session.scalar(select(IdentityLink.status).where(IdentityLink.id == link_id)) == "rejected"


# -- jobs -------------------------------------------------------------------------------------

def test_jobs_page_counts_states_and_lists_dead_letters(console: Console, clean_engine: Engine,
                                                        workspace: WorkspaceContext,
                                                        other_workspace: WorkspaceContext) -> None:
    own = _dead_job(clean_engine, workspace.id, error="RuntimeError: smtp timed out")
    foreign = _dead_job(clean_engine, other_workspace.id, error="RuntimeError: not ours")
    with transaction(clean_engine) as session:
        enqueue(session, "test.pending", workspace_id=workspace.id)
    html = console.get("/jobs").text
    assert _job_count(html, "dead") == "1" and _job_count(html, "pending") == "1"
    assert f'data-job-id="{own}"' in html and "smtp timed out" in html
    assert f'data-job-id="{foreign}"' not in html and "not ours" not in html


def test_retrying_a_dead_job_queues_it_again(console: Console, clean_engine: Engine,
                                             workspace: WorkspaceContext) -> None:
    job_id = _dead_job(clean_engine, workspace.id)
    response = console.post(f"/jobs/{job_id}/retry", htmx=True)
    assert response.status_code == 200 and 'data-job-state="pending"' in response.text
    with transaction(clean_engine) as session:
        job = session.get(Job, job_id)
        assert job is not None and (job.state, job.attempts) == ("pending", 0)
    assert console.post(f"/jobs/{job_id}/retry", htmx=True).status_code == 404


def test_a_dead_job_of_another_workspace_cannot_be_retried(console: Console, clean_engine: Engine,
                                                           other_workspace: WorkspaceContext) -> None:
    job_id = _dead_job(clean_engine, other_workspace.id)
    assert console.post(f"/jobs/{job_id}/retry").status_code == 404
    with transaction(clean_engine) as session:
        assert session.scalar(select(Job.state).where(Job.id == job_id)) == "dead"


# -- helpers ----------------------------------------------------------------------------------

def _stat(html: str, name: str) -> str:
    match = re.search(rf'data-stat="{name}">.*?<div class="stat-value">([^<]+)</div>', html, re.S)
    assert match is not None, name
    return match.group(1)


def _metric(html: str, name: str) -> str:
    match = re.search(rf'data-metric="{name}">([^<]+)</div>', html)
    assert match is not None, name
    return match.group(1)


def _job_count(html: str, state: str) -> str:
    match = re.search(rf'data-job-state="{state}">.*?<div class="stat-value">([^<]+)</div>', html, re.S)
    assert match is not None, state
    return match.group(1)


def _customer_id(engine: Engine, unionid: str) -> int:
    from siyu.customers.models import Identity

    with transaction(engine) as session:
        found = session.scalar(select(Identity.customer_id).where(Identity.value == unionid))
    assert found is not None
    return int(found)


def _pending_link_id(engine: Engine) -> int:
    with transaction(engine) as session:
        ids = list(session.scalars(select(IdentityLink.id).where(IdentityLink.status == "pending")))
    assert len(ids) == 1
    return ids[0]


def _dead_job(engine: Engine, workspace_id: int, error: str = "RuntimeError: boom") -> int:
    with transaction(engine) as session:
        enqueue(session, "test.dead", {"n": 1}, workspace_id=workspace_id, key=f"dead:{workspace_id}:{error}")
        job_id = session.scalar(select(Job.id).where(Job.key == f"dead:{workspace_id}:{error}"))
        session.execute(update(Job).where(Job.id == job_id).values(state="dead", attempts=8, last_error=error))
    assert job_id is not None
    return int(job_id)


@contextmanager
def _counting(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _count_queries(engine: Engine, request: Any) -> int:
    with _counting(engine) as statements:
        assert request().status_code == 200
    return len(statements)



def test_an_address_that_does_not_exist_is_a_console_page_for_browsers_and_a_problem_for_the_api(
        console: Console) -> None:
    page = console.client.get("/no-such-page", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "未找到" in page.text and "not_found" in page.text
    english = console.client.get("/no-such-page?lang=en", headers={"Accept": "text/html"})
    assert english.status_code == 404 and "Not found" in english.text
    api = console.client.get("/api/v1/no-such-thing", headers={"Accept": "text/html"})
    assert api.status_code == 404 and api.json()["code"] == "not_found"
    plain = console.client.get("/no-such-page")
    assert plain.status_code == 404 and plain.json()["code"] == "not_found"
