"""Console pages of messaging (templates in web/templates/messaging/), and the public unsubscribe page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from siyu.web.templating import render

router = APIRouter(include_in_schema=False)


def render_unsubscribe(request: Request, code: str, *, done: bool) -> HTMLResponse:
    return render(request, "messaging/unsubscribe.html", {"done": done, "code": code})
