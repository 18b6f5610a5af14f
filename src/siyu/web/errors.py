"""One problem format for every error: {status, code, message, field}."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from siyu.kit.errors import SiyuError


def problem(status: int, code: str, message: str, field: str | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": status, "code": code, "message": message, "field": field, **extra},
                        status_code=status)


def _field_of(loc: tuple[Any, ...]) -> str | None:
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


def install_error_handlers(app: FastAPI, not_found_page: Callable[[Request], Response] | None = None) -> None:
    """`not_found_page`: what a person's browser gets for an address outside the API that does not exist."""
    @app.exception_handler(SiyuError)
    async def _domain(_: Request, exc: SiyuError) -> JSONResponse:
        return JSONResponse(exc.to_problem(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": "invalid"}
        code = "malformed_json" if first.get("type") == "json_invalid" else "validation_failed"
        message = "request body is not valid JSON" if code == "malformed_json" else str(first.get("msg"))
        details = [{"field": _field_of(tuple(e.get("loc", ()))), "message": e.get("msg")} for e in errors[:20]]
        return problem(422, code, message, _field_of(tuple(first.get("loc", ()))), details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and not_found_page is not None and _browser_outside_api(request):
            return not_found_page(request)
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}.get(
            exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        import logging

        logging.getLogger("siyu.web").exception("unhandled error", exc_info=exc)
        return problem(500, "internal_error", "an unexpected error occurred; it has been logged")


def _browser_outside_api(request: Request) -> bool:
    """A person's browser asked for a console address that does not exist (not an API client)."""
    path = request.url.path
    return not (path.startswith("/api/") or path == "/api") and "text/html" in request.headers.get("accept", "")
