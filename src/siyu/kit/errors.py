"""Domain errors with stable codes, mapped to one problem format by the web layer and the CLI."""

from __future__ import annotations

from typing import Any


class SiyuError(Exception):
    """Base of every expected error. `code` is stable; `status` is the HTTP status it maps to."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None,
                 status: int | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details

    def to_problem(self) -> dict[str, Any]:
        problem: dict[str, Any] = {"status": self.status, "code": self.code, "message": self.message,
                                   "field": self.field}
        if self.details is not None:
            problem["details"] = self.details
        return problem


class ValidationFailed(SiyuError):
    status = 422
    code = "validation_failed"


class NotFound(SiyuError):
    status = 404
    code = "not_found"


class Conflict(SiyuError):
    status = 409
    code = "conflict"


class Unauthorized(SiyuError):
    status = 401
    code = "unauthorized"


class Forbidden(SiyuError):
    status = 403
    code = "forbidden"
