from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.errors import Conflict, Unauthorized, ValidationFailed
from siyu.workspaces.models import ApiKey, User, Workspace
from siyu.workspaces.service import (
    authenticate_user,
    create_api_key,
    create_user,
    create_workspace,
    get_workspace,
    verify_api_key,
)


def test_workspace_defaults_to_shanghai_and_cny(db: Session) -> None:
    ws = create_workspace(db, "brand-a", "品牌A")
    assert (ws.timezone, ws.currency) == ("Asia/Shanghai", "CNY")


@pytest.mark.parametrize(("slug", "timezone", "field"), [("Bad Slug", "Asia/Shanghai", "slug"),
                                                         ("ok-slug", "Mars/Olympus", "timezone")])
def test_bad_workspace_input_is_refused(db: Session, slug: str, timezone: str, field: str) -> None:
    with pytest.raises(ValidationFailed) as error:
        create_workspace(db, slug, "x", timezone)
    assert error.value.field == field
    assert db.scalar(select(func.count()).select_from(Workspace)) == 0


def test_duplicate_slug_conflicts(db: Session) -> None:
    create_workspace(db, "dup", "x")
    with pytest.raises(Conflict):
        create_workspace(db, "dup", "y")


def test_passwords_are_argon2_hashed_and_verified(db: Session, workspace) -> None:
    ws = get_workspace(db, workspace.id)
    user = create_user(db, ws, "Staff@Acme.test", "导购小王", "long-enough-pw", "staff")
    assert user.password_hash.startswith("$argon2")
    assert authenticate_user(db, "staff@acme.test", "long-enough-pw").id == user.id
    with pytest.raises(Unauthorized):
        authenticate_user(db, "staff@acme.test", "wrong-password")
    with pytest.raises(Unauthorized):
        authenticate_user(db, "nobody@acme.test", "long-enough-pw")


@pytest.mark.parametrize(("kwargs", "field"), [({"role": "king"}, "role"), ({"password": "short"}, "password"),
                                              ({"email": "not-an-email"}, "email")])
def test_bad_user_input_is_refused(db: Session, workspace, kwargs: dict, field: str) -> None:
    args = {"email": "a@acme.test", "name": "A", "password": "long-enough-pw", "role": "operator", **kwargs}
    with pytest.raises(ValidationFailed) as error:
        create_user(db, get_workspace(db, workspace.id), **args)
    assert error.value.field == field
    assert db.scalar(select(func.count()).select_from(User)) == 0


def test_api_key_secret_is_shown_once_and_stored_hashed(db: Session, workspace) -> None:
    key, secret = create_api_key(db, get_workspace(db, workspace.id), "crm")
    assert secret.startswith("sk_") and secret not in key.key_hash
    assert verify_api_key(db, secret).id == key.id
    with pytest.raises(Unauthorized):
        verify_api_key(db, secret[:-1] + ("x" if secret[-1] != "x" else "y"))


def test_revoked_key_stops_working(api: TestClient, api_as, db: Session) -> None:
    owner = api_as("owner")
    created = owner.post("/api/v1/api-keys", json={"name": "shop", "role": "operator"})
    assert created.status_code == 201
    secret = created.json()["secret"]
    shop = TestClient(owner.app)
    shop.headers["Authorization"] = f"Bearer {secret}"
    assert shop.get("/api/v1/workspace").status_code == 200
    assert owner.delete(f"/api/v1/api-keys/{created.json()['id']}").status_code == 200
    response = shop.get("/api/v1/workspace")
    assert response.status_code == 401 and response.json()["code"] == "invalid_credentials"
    assert db.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_not(None))) == 1


def test_only_owners_manage_keys(api: TestClient) -> None:
    response = api.get("/api/v1/api-keys")
    assert response.status_code == 403 and response.json()["code"] == "forbidden"


def test_errors_use_the_problem_format(api: TestClient) -> None:
    body = api.get("/api/v1/customers/999999").json()
    assert set(body) >= {"status", "code", "message", "field"}
    assert body["status"] == 404 and body["code"] == "customer_not_found"
