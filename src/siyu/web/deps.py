"""Request dependencies: the unit of work, the caller and the workspace they act in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from siyu.kit.errors import Forbidden, Unauthorized
from siyu.web.csrf import HEADER as CSRF_HEADER
from siyu.web.csrf import SAFE_METHODS, CsrfFailed, token_matches
from siyu.workspaces.service import WorkspaceContext, context_of, get_user, get_workspace, verify_api_key


def get_db(request: Request) -> Iterator[Session]:
    """The request owns the transaction: commit on success, roll back on any error."""
    session: Session = request.app.state.sessions()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# scope="function": the commit happens before the response is sent, so a failed commit is never
# answered with a success.
Db = Annotated[Session, Depends(get_db, scope="function")]


@dataclass(frozen=True)
class Caller:
    workspace: WorkspaceContext
    role: str
    actor: str  # "user:3" or "apikey:7", recorded in audit entries
    user_id: int | None = None


def _api_key_from(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


def get_caller(request: Request, db: Db) -> Caller:
    secret = _api_key_from(request)
    if secret:
        key = verify_api_key(db, secret)
        workspace = get_workspace(db, key.workspace_id)
        return Caller(context_of(workspace), key.role, f"apikey:{key.id}")
    user_id = request.session.get("user_id") if "session" in request.scope else None
    if user_id:
        if request.method not in SAFE_METHODS and not token_matches(request, request.headers.get(CSRF_HEADER)):
            raise CsrfFailed("a console session must send its CSRF token (X-CSRF-Token) to change anything")
        user = get_user(db, int(user_id))
        if user is not None and user.is_active:
            workspace = get_workspace(db, user.workspace_id)
            return Caller(context_of(workspace), user.role, f"user:{user.id}", user.id)
    raise Unauthorized("an API key (Authorization: Bearer sk_...) or a console session is required")


CallerDep = Annotated[Caller, Depends(get_caller)]

WRITE_ROLES = frozenset({"owner", "operator"})


def require_roles(*roles: str) -> Any:
    allowed = frozenset(roles)

    def check(caller: CallerDep) -> Caller:
        if caller.role not in allowed:
            raise Forbidden(f"role {caller.role} may not do this (needs {', '.join(sorted(allowed))})")
        return caller

    return Depends(check)


Writer = Annotated[Caller, require_roles("owner", "operator")]
Ingestor = Annotated[Caller, require_roles("owner", "operator", "staff")]
Reader = Annotated[Caller, require_roles("owner", "operator", "staff", "analyst")]
