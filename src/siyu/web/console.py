"""The web console: login, dashboard, customers, identity links and jobs.

Pages are rendered on the server and enhanced with HTMX: a request sent by HTMX gets the fragment
it asked for, any other request the whole page, so every link also works without JavaScript.
Every page needs a console session (else: the login page); every unsafe method needs the session's
CSRF token; writes need the owner or operator role. Routes stay thin: they call service functions.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from siyu.customers.models import IdentityLink
from siyu.customers.service import (
    count_customers,
    count_links,
    customer_profile,
    customers_by_id,
    decide_link,
    identities_by_customer,
    list_customers,
    list_links,
    merges_of,
    new_customers_per_day,
    resolve_customer_id,
)
from siyu.events.rollups import rollups_for
from siyu.events.service import count_events, order_totals, orders_of, timeline
from siyu.jobs.service import job_counts, list_jobs, retry_dead_job
from siyu.kit.errors import Forbidden, NotFound, SiyuError
from siyu.web.csrf import CsrfProtected, csrf_token, rotate_csrf_token
from siyu.web.deps import WRITE_ROLES, Caller, Db
from siyu.web.templating import N_, SESSION_LOCALE, flash, navigation, render, select_locale
from siyu.workspaces.errors import InvalidCredentials
from siyu.workspaces.service import WorkspaceContext, authenticate_user, context_of, get_user, get_workspace

SESSION_USER = "user_id"  # the key siyu.web.deps.get_caller reads too
CUSTOMERS_PAGE = 50
TIMELINE_PAGE = 50
ORDERS_SHOWN = 10
DEAD_JOBS_SHOWN = 100
NEW_CUSTOMER_DAYS = 30


class LoginRequired(Exception):
    """Raised by the console's dependencies when there is no valid session."""


# -- errors as pages ---------------------------------------------------------------------------

ERROR_TITLES = {400: N_("Bad request"), 403: N_("Not allowed"), 404: N_("Not found"), 409: N_("Already done"),
                422: N_("Invalid request")}
ERROR_MESSAGES = {
    "csrf_failed": N_("This form has expired or did not come from this console. Reload the page and try again."),
    "forbidden": N_("Your role can view this page but cannot make this change."),
    "customer_not_found": N_("There is no such customer in this workspace."),
    "link_not_found": N_("There is no such identity link in this workspace."),
    "link_already_decided": N_("This match has already been decided."),
    "not_found": N_("The page or record you asked for does not exist."),
}


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _wants_fragment(request: Request) -> bool:
    """HTMX asked for a part of the page (a history restore needs the whole page)."""
    return _is_htmx(request) and request.headers.get("hx-history-restore-request") != "true"


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if _is_htmx(request):
        current = request.headers.get("hx-current-url", "")
        target = current.split(str(request.base_url).rstrip("/"), 1)[-1] or "/"
    url = f"{request.app.url_path_for('login')}?{urlencode({'next': target})}"
    if _is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def error_page(request: Request, exc: SiyuError | RequestValidationError) -> Response:
    if isinstance(exc, RequestValidationError):
        status, code, detail = 422, "validation_failed", "; ".join(str(e.get("msg")) for e in exc.errors()[:3])
    else:
        status, code, detail = exc.status, exc.code, exc.message
    context = {"status": status, "code": code, "title": ERROR_TITLES.get(status, N_("Something went wrong")),
               "message": ERROR_MESSAGES.get(code), "detail": detail}
    template = "errors/_toast.html" if _is_htmx(request) else "errors/page.html"
    return render(request, template, context, status_code=status)


def not_found_page(request: Request) -> Response:
    """The console's page for an address that does not exist, in the visitor's language."""
    page_locale(request)
    return error_page(request, NotFound("no page at this address"))


class ConsoleRoute(APIRoute):
    """Console errors are pages, not JSON: no session leads to the login page; a refused or failed
    request shows an error page with the problem's status, and its writes are rolled back."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                return _login_redirect(request)
            except (SiyuError, RequestValidationError) as exc:
                db = getattr(request.state, "db", None)
                if db is not None:  # the request's session commits after us: leave nothing to commit
                    db.rollback()
                return error_page(request, exc)

        return handle


# -- who is looking ----------------------------------------------------------------------------

def page_locale(request: Request) -> str:
    request.state.locale = select_locale(request, request.app.state.settings.default_locale)
    return str(request.state.locale)


@dataclass(frozen=True)
class Viewer:
    caller: Caller
    name: str
    email: str

    @property
    def workspace(self) -> WorkspaceContext:
        return self.caller.workspace

    @property
    def can_write(self) -> bool:
        return self.caller.role in WRITE_ROLES


def current_viewer(request: Request, db: Db) -> Viewer:
    request.state.db = db
    user_id = request.session.get(SESSION_USER)
    user = get_user(db, user_id) if isinstance(user_id, int) else None
    if user is None or not user.is_active:
        raise LoginRequired
    workspace = context_of(get_workspace(db, user.workspace_id))
    viewer = Viewer(Caller(workspace, user.role, f"user:{user.id}", user.id), user.name, user.email)
    request.state.shell = {"viewer": viewer, "timezone": workspace.timezone, "csrf_token": csrf_token(request),
                           "nav": navigation(request)}
    return viewer


def current_editor(viewer: Annotated[Viewer, Depends(current_viewer)]) -> Viewer:
    if not viewer.can_write:
        raise Forbidden(f"role {viewer.caller.role} may only read")
    return viewer


ViewerDep = Annotated[Viewer, Depends(current_viewer)]
EditorDep = Annotated[Viewer, Depends(current_editor)]

def console_router() -> APIRouter:
    """The router of a console module (this one, or a domain's `console.py`): HTML error pages and
    login redirects, the request's language, and CSRF checks on every unsafe method. Name a domain's
    index page after the domain (`name="tags"`) and it appears in the sidebar (siyu.web.templating.NAV)."""
    return APIRouter(route_class=ConsoleRoute, include_in_schema=False, default_response_class=HTMLResponse,
                     dependencies=[Depends(page_locale), CsrfProtected])


router = console_router()


# -- login -------------------------------------------------------------------------------------

def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _login_form(request: Request, *, email: str = "", next_url: str = "/", error: str | None = None,
                status_code: int = 200) -> HTMLResponse:
    request.state.shell = {"csrf_token": csrf_token(request)}
    return render(request, "auth/login.html", {"email": email, "next": _safe_next(next_url), "error": error},
                  status_code=status_code)


@router.get("/login", name="login")
def login_page(request: Request, db: Db, next: str = "/") -> Response:
    user_id = request.session.get(SESSION_USER)
    if isinstance(user_id, int) and (user := get_user(db, user_id)) is not None and user.is_active:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_form(request, next_url=next)


@router.post("/login", name="login_submit")
def login_submit(request: Request, db: Db, email: Annotated[str, Form()] = "",
                 password: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/") -> Response:
    try:
        user = authenticate_user(db, email, password)
    except InvalidCredentials:
        return _login_form(request, email=email, next_url=next, error=N_("Wrong email or password."),
                           status_code=401)
    locale = request.session.get(SESSION_LOCALE)
    request.session.clear()  # a new session for the new user: nothing carries over but the language
    if locale:
        request.session[SESSION_LOCALE] = locale
    request.session[SESSION_USER] = user.id
    rotate_csrf_token(request)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", name="logout")
def logout(request: Request) -> Response:
    locale = request.session.get(SESSION_LOCALE)
    request.session.clear()
    if locale:
        request.session[SESSION_LOCALE] = locale
    return RedirectResponse(request.app.url_path_for("login"), status_code=303)


# -- dashboard ---------------------------------------------------------------------------------

@router.get("/", name="dashboard")
def dashboard(request: Request, db: Db, viewer: ViewerDep) -> Response:
    ws = viewer.workspace
    return render(request, "dashboard.html", {
        "customers": count_customers(db, ws.id), "events": count_events(db, ws.id),
        "orders": order_totals(db, ws.id), "pending_links": count_links(db, ws.id),
        "new_per_day": new_customers_per_day(db, ws.id, ws.timezone, NEW_CUSTOMER_DAYS),
        "jobs": job_counts(db, ws.id)})


# -- customers ---------------------------------------------------------------------------------

@router.get("/customers", name="customers")
def customers_page(request: Request, db: Db, viewer: ViewerDep, q: str = "", cursor: str | None = None) -> Response:
    ws = viewer.workspace
    page = list_customers(db, ws.id, query=q.strip() or None, cursor=cursor or None, limit=CUSTOMERS_PAGE)
    context = {"q": q.strip(), "page": page, "rollups": rollups_for(db, ws.id, [c.id for c in page.items]),
               "first_page": not cursor}
    return render(request, "customers/_rows.html" if _wants_fragment(request) else "customers/list.html", context)


@router.get("/customers/{customer_id}", name="customer_detail")
def customer_detail(request: Request, db: Db, viewer: ViewerDep, customer_id: int) -> Response:
    ws = viewer.workspace
    profile = customer_profile(db, ws.id, customer_id)
    survivor = profile.customer.id
    events = timeline(db, ws.id, survivor, limit=TIMELINE_PAGE)
    return render(request, "customers/detail.html", {
        "profile": profile, "customer": profile.customer, "rollup": profile.rollup, "events": events,
        "next_before": events[-1].id if len(events) == TIMELINE_PAGE else None,
        "orders": orders_of(db, ws.id, survivor, ORDERS_SHOWN), "merges": merges_of(db, ws.id, survivor),
        "pending_links": list_links(db, ws.id, "pending", survivor)})


@router.get("/customers/{customer_id}/timeline", name="customer_timeline_fragment")
def customer_timeline(request: Request, db: Db, viewer: ViewerDep, customer_id: int,
                      before: int | None = None) -> Response:
    ws = viewer.workspace
    survivor = resolve_customer_id(db, ws.id, customer_id)
    events = timeline(db, ws.id, survivor, limit=TIMELINE_PAGE, before_id=before)
    return render(request, "customers/_timeline.html", {
        "customer_id": survivor, "events": events,
        "next_before": events[-1].id if len(events) == TIMELINE_PAGE else None})


# -- identity links ----------------------------------------------------------------------------

@router.get("/identity-links", name="identity_links")
def identity_links_page(request: Request, db: Db, viewer: ViewerDep) -> Response:
    ws = viewer.workspace
    links = list_links(db, ws.id, "pending")
    ids = sorted({cid for link in links for cid in (link.customer_id, link.other_customer_id)})
    return render(request, "customers/identity_links.html", {
        "links": links, "customers": customers_by_id(db, ws.id, ids),
        "identities": identities_by_customer(db, ws.id, ids), "rollups": rollups_for(db, ws.id, ids)})


def _link_decided(request: Request, link: IdentityLink, confirmed: bool) -> Response:
    """After a merge both sides of the link name the surviving profile; after a rejection, the two."""
    if _wants_fragment(request):
        return render(request, "customers/_link_decided.html", {"link": link, "confirmed": confirmed})
    if confirmed:
        flash(request, N_("The two profiles were merged into #%(id)s."), id=link.customer_id)
    else:
        flash(request, N_("Profiles #%(a)s and #%(b)s stay apart."), a=link.customer_id, b=link.other_customer_id)
    return RedirectResponse(request.app.url_path_for("identity_links"), status_code=303)


@router.post("/identity-links/{link_id}/confirm", name="identity_link_confirm")
def confirm_link(request: Request, db: Db, editor: EditorDep, link_id: int) -> Response:
    link = decide_link(db, editor.workspace, link_id, confirm=True, actor=editor.caller.actor)
    return _link_decided(request, link, confirmed=True)


@router.post("/identity-links/{link_id}/reject", name="identity_link_reject")
def reject_link(request: Request, db: Db, editor: EditorDep, link_id: int) -> Response:
    link = decide_link(db, editor.workspace, link_id, confirm=False, actor=editor.caller.actor)
    return _link_decided(request, link, confirmed=False)


# -- jobs --------------------------------------------------------------------------------------

@router.get("/jobs", name="jobs")
def jobs_page(request: Request, db: Db, viewer: ViewerDep) -> Response:
    ws = viewer.workspace
    return render(request, "jobs/list.html", {
        "counts": job_counts(db, ws.id), "dead": list_jobs(db, "dead", DEAD_JOBS_SHOWN, workspace_id=ws.id)})


@router.post("/jobs/{job_id}/retry", name="job_retry")
def retry_job(request: Request, db: Db, editor: EditorDep, job_id: int) -> Response:
    job = retry_dead_job(db, job_id, editor.workspace.id)
    if _wants_fragment(request):
        return render(request, "jobs/_retried.html", {"job": job})
    flash(request, N_("Job #%(id)s is queued again."), id=job.id)
    return RedirectResponse(request.app.url_path_for("jobs"), status_code=303)
