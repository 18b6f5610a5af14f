from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from siyu.web.deps import Db, Reader, require_roles
from siyu.workspaces import service

router = APIRouter(prefix="/api/v1", tags=["workspace"])
Owner = require_roles("owner")


class ApiKeyIn(BaseModel):
    name: str
    role: str = "operator"


def _key(key: Any) -> dict[str, Any]:
    return {"id": key.id, "name": key.name, "role": key.role, "prefix": key.prefix, "created_at": key.created_at,
            "last_used_at": key.last_used_at, "revoked_at": key.revoked_at}


@router.get("/workspace", summary="The workspace the caller acts in")
def current_workspace(caller: Reader) -> dict[str, Any]:
    ws = caller.workspace
    return {"id": ws.id, "slug": ws.slug, "name": ws.name, "timezone": ws.timezone, "currency": ws.currency,
            "strong_identity_types": sorted(ws.strong_identity_types), "strict_events": ws.strict_events,
            "role": caller.role}


@router.get("/api-keys", dependencies=[Owner])
def list_keys(caller: Reader, db: Db) -> list[dict[str, Any]]:
    return [_key(k) for k in service.list_api_keys(db, caller.workspace.id)]


@router.post("/api-keys", status_code=201, dependencies=[Owner], summary="Create a key; the secret is shown once")
def create_key(caller: Reader, db: Db, body: ApiKeyIn) -> dict[str, Any]:
    key, secret = service.create_api_key(db, service.get_workspace(db, caller.workspace.id), body.name, body.role)
    return {**_key(key), "secret": secret}


@router.delete("/api-keys/{key_id}", dependencies=[Owner])
def revoke_key(caller: Reader, db: Db, key_id: int) -> dict[str, Any]:
    return _key(service.revoke_api_key(db, caller.workspace.id, key_id))
