"""CSRF protection for the console: one random token per session, checked on every unsafe method.

Forms carry it as a hidden `csrf_token` field; HTMX sends it as the `X-CSRF-Token` header (set once
with `hx-headers` on <body>). A console router protects all of its routes with
`APIRouter(dependencies=[CsrfProtected])`.
"""

from __future__ import annotations

import secrets

from fastapi import Depends, Request

from siyu.kit.errors import Forbidden

SESSION_KEY = "csrf_token"
FORM_FIELD = "csrf_token"
HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class CsrfFailed(Forbidden):
    code = "csrf_failed"


def csrf_token(request: Request) -> str:
    """The session's token, created on first use."""
    token = request.session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[SESSION_KEY] = token
    return token


def rotate_csrf_token(request: Request) -> str:
    """A fresh token, for when the session changes hands (login, logout)."""
    token = secrets.token_urlsafe(32)
    request.session[SESSION_KEY] = token
    return token


def token_matches(request: Request, sent: object) -> bool:
    expected = request.session.get(SESSION_KEY)
    return (isinstance(expected, str) and bool(expected) and isinstance(sent, str)
            and secrets.compare_digest(sent.encode(), expected.encode()))


async def verify_csrf(request: Request) -> None:
    """Refuse an unsafe request whose header or form field does not carry the session's token."""
    if request.method in SAFE_METHODS:
        return
    sent: object = request.headers.get(HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(_FORM_TYPES):
        sent = (await request.form()).get(FORM_FIELD)
    if not token_matches(request, sent):
        raise CsrfFailed("the form expired or did not come from this console; reload the page and try again")


CsrfProtected = Depends(verify_csrf)
