"""Accounts: signup, logout, GET/PUT/DELETE /user, ws-token, and every way auth fails (login:
test_login.py)."""

from __future__ import annotations

import time

import bcrypt
import jwt
import pytest
from flask import Flask

from gateway import passwords
from shared.db.models import GarmentAsset, Job, TryOn, User
from tests.gateway.helpers import PASSWORD, sessions_of, settings_of, storage_of

# -- signup -----------------------------------------------------------------------------------


def test_signup_answers_the_user_without_its_hash(client) -> None:
    response = client.post("/user/signup", json={"user_name": "Ann", "email": "Ann@Example.COM", "password": PASSWORD})
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"id", "user_name", "email", "createdAt", "updatedAt"}
    assert body["user_name"] == "Ann" and body["email"] == "ann@example.com"
    assert "$2" not in response.get_data(as_text=True)


def test_signup_accepts_name_for_user_name(client) -> None:
    response = client.post("/user/signup", json={"name": "Bo", "email": "bo@example.com", "password": PASSWORD})
    assert response.status_code == 201 and response.get_json()["user_name"] == "Bo"


def test_signup_stores_a_bcrypt_hash(app, client) -> None:
    user_id = client.post(
        "/user/signup", json={"user_name": "c", "email": "c@example.com", "password": PASSWORD}
    ).get_json()["id"]
    with sessions_of(app)() as session:
        stored = session.get(User, user_id).password_hash
    assert stored.startswith("$2b$") and bcrypt.checkpw(PASSWORD.encode(), stored.encode())


def test_a_taken_email_is_refused_whatever_its_case(client) -> None:
    assert (
        client.post(
            "/user/signup", json={"user_name": "a", "email": "dup@example.com", "password": PASSWORD}
        ).status_code
        == 201
    )
    response = client.post("/user/signup", json={"user_name": "b", "email": "DUP@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert response.get_json()["field"] == "email"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "x@example.com", "password": PASSWORD}, "user_name"),
        ({"user_name": "x", "password": PASSWORD}, "email"),
        ({"user_name": "x", "email": "x@example.com"}, "password"),
        ({"user_name": "x", "email": "not-an-email", "password": PASSWORD}, "email"),
        ({"user_name": "x", "email": "x@example.com", "password": "short"}, "password"),
        ({"user_name": "x", "email": "x@example.com", "password": "é" * 40}, "password"),  # 80 bytes > 72
        ({"user_name": 5, "email": "x@example.com", "password": PASSWORD}, "user_name"),
        ({"user_name": "x", "email": ["x@example.com"], "password": PASSWORD}, "email"),
        ({"user_name": "x", "email": "x@example.com", "password": 12345678}, "password"),
        ({"user_name": "", "email": "x@example.com", "password": PASSWORD}, "user_name"),
    ],
)
def test_signup_bad_bodies_name_the_field(client, body, field) -> None:
    response = client.post("/user/signup", json=body)
    assert response.status_code == 400
    error = response.get_json()
    assert error["field"] == field
    assert error["error"] == error["message"] and error["code"] == "bad_request"
    if field == "password":
        assert str(body.get("password")) not in error["message"]  # a password is never echoed


def test_bad_values_are_named_in_the_message(client) -> None:
    response = client.post("/user/signup", json={"user_name": "x", "email": "nope", "password": PASSWORD})
    assert "nope" in response.get_json()["message"]


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("{not json", "application/json"),
        ('["a", "list"]', "application/json"),
        ("user_name=x&email=y", "application/x-www-form-urlencoded"),
        ('{"user_name": "x"}', "text/plain"),
        ("", "application/json"),
    ],
)
def test_non_json_bodies_are_400(client, data, content_type) -> None:
    response = client.post("/user/signup", data=data, content_type=content_type)
    assert response.status_code == 400
    assert response.get_json()["code"] == "bad_request"


def test_an_oversized_json_body_is_413(client) -> None:
    response = client.post("/user/signup", json={"user_name": "x" * 70_000, "email": "a@b.co", "password": PASSWORD})
    assert response.status_code == 413


# -- authentication failures -------------------------------------------------------------------


def _token(app: Flask, user_id: str, **claims: object) -> str:
    now = int(time.time())
    payload = {"userId": user_id, "sub": user_id, "ver": 0, "iat": now, "exp": now + 60, **claims}
    return jwt.encode(payload, settings_of(app).jwt_secret, algorithm="HS256")


def _unauthorized(response) -> None:
    assert response.status_code == 401
    assert response.get_json()["message"] == "Unauthorized"
    assert response.get_json()["code"] == "unauthorized"


def test_no_token_is_401(client) -> None:
    _unauthorized(client.get("/user"))


def test_a_tampered_token_is_401(client, person) -> None:
    header, payload, signature = person.token.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    _unauthorized(client.get("/user", headers={"Authorization": f"Bearer {header}.{payload}.{flipped}"}))
    forged = jwt.encode(
        {"sub": person.id, "userId": person.id, "ver": 0, "exp": int(time.time()) + 60}, "wrong-secret-" * 4
    )
    _unauthorized(client.get("/user", headers={"Authorization": f"Bearer {forged}"}))


def test_an_unsigned_token_is_401(client, person) -> None:
    unsigned = jwt.encode({"sub": person.id, "ver": 0, "exp": int(time.time()) + 60}, None, algorithm="none")
    _unauthorized(client.get("/user", headers={"Authorization": f"Bearer {unsigned}"}))


def test_an_expired_token_is_401(app, client, person) -> None:
    expired = _token(app, person.id, iat=int(time.time()) - 100, exp=int(time.time()) - 10)
    _unauthorized(client.get("/user", headers={"Authorization": f"Bearer {expired}"}))
    assert client.get("/user", headers={"Authorization": f"Bearer {_token(app, person.id)}"}).status_code == 200


def test_a_token_without_exp_is_401(app, client, person) -> None:
    token = jwt.encode({"sub": person.id, "ver": 0}, settings_of(app).jwt_secret, algorithm="HS256")
    _unauthorized(client.get("/user", headers={"Authorization": f"Bearer {token}"}))


def test_a_malformed_authorization_header_is_401(client, person) -> None:
    _unauthorized(client.get("/user", headers={"Authorization": f"Basic {person.token}"}))
    _unauthorized(client.get("/user", headers={"Authorization": "Bearer not.a.jwt"}))


def test_the_cookie_authenticates(client, person) -> None:
    client.set_cookie("token", person.token)
    assert client.get("/user").get_json()["id"] == person.id


def test_a_ws_token_is_refused_on_rest_routes(client, person) -> None:
    ws_token = person.get("/user/ws-token").get_json()["token"]
    _unauthorized(client.get("/user", headers={"Authorization": f"Bearer {ws_token}"}))


def test_logout_revokes_earlier_tokens_and_clears_the_cookie(app, person) -> None:
    second = person.login()  # another device
    response = person.post("/user/logout")
    assert response.status_code == 200
    assert "token=;" in response.headers["Set-Cookie"]
    _unauthorized(person.get("/user"))
    _unauthorized(person.client.get("/user", headers={"Authorization": f"Bearer {second}"}))
    person.token = person.login()
    assert person.get("/user").status_code == 200


def test_logout_without_a_valid_token_answers_200_and_clears_the_cookie(client) -> None:
    """As the original did: a second tab logging out after the first one must not see an error."""
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = client.post("/user/logout", headers=headers)
        assert response.status_code == 200 and response.get_json() == {"message": "Logged out"}
        assert "token=;" in response.headers["Set-Cookie"]


def test_a_second_logout_with_the_revoked_token_answers_200(person) -> None:
    assert person.post("/user/logout").status_code == 200
    again = person.post("/user/logout")
    assert again.status_code == 200 and "token=;" in again.headers["Set-Cookie"]


def test_a_deleted_users_token_is_401(person) -> None:
    assert person.delete("/user").status_code == 204
    _unauthorized(person.get("/user"))


def test_a_token_for_someone_who_does_not_exist_is_401(app, client) -> None:
    _unauthorized(client.get("/user", headers={"Authorization": f"Bearer {_token(app, 'no-such-user')}"}))


# -- GET / PUT /user ------------------------------------------------------------------------------


def test_get_user(person) -> None:
    body = person.get("/user").get_json()
    assert body["id"] == person.id and body["email"] == person.email and "password_hash" not in body


def test_put_user_changes_name_and_email(person, client) -> None:
    response = person.put("/user", json={"user_name": "Alice B", "email": "NEW@example.com"})
    assert response.status_code == 200
    assert response.get_json()["user_name"] == "Alice B" and response.get_json()["email"] == "new@example.com"
    assert client.post("/user/login", json={"email": "new@example.com", "password": PASSWORD}).status_code == 200
    assert person.get("/user").status_code == 200  # no password change: the token still works


def test_put_user_password_rehashes_and_revokes_old_tokens(app, person, client) -> None:
    old = person.token
    response = person.put("/user", json={"password": "a brand new password"})
    assert response.status_code == 200
    new_token = response.get_json()["token"]
    _unauthorized(client.get("/user", headers={"Authorization": f"Bearer {old}"}))
    assert client.get("/user", headers={"Authorization": f"Bearer {new_token}"}).status_code == 200
    assert client.post("/user/login", json={"email": person.email, "password": PASSWORD}).status_code == 401
    assert (
        client.post("/user/login", json={"email": person.email, "password": "a brand new password"}).status_code == 200
    )
    with sessions_of(app)() as session:
        user = session.get(User, person.id)
        assert bcrypt.checkpw(b"a brand new password", user.password_hash.encode())
        assert user.token_version == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "x"}, "id"),
        ({"password_hash": "$2b$..."}, "password_hash"),
        ({"token_version": 0}, "token_version"),
        ({"user_name": "ok", "name": "alias-not-here"}, "name"),
        ({"email": "bad"}, "email"),
        ({"password": "short"}, "password"),
        ({"user_name": 3}, "user_name"),
    ],
)
def test_put_user_refuses_other_fields_and_bad_values(person, body, field) -> None:
    response = person.put("/user", json=body)
    assert response.status_code == 400
    assert response.get_json()["field"] == field


def test_put_user_empty_body_and_non_json(person) -> None:
    assert person.put("/user", json={}).status_code == 400
    assert person.put("/user", data="x", content_type="text/plain").status_code == 400


def test_put_user_taken_email(person, other) -> None:
    response = person.put("/user", json={"email": other.email.upper()})
    assert response.status_code == 400 and response.get_json()["field"] == "email"


def test_user_routes_without_auth(client) -> None:
    for method in ("get", "put", "delete"):
        _unauthorized(getattr(client, method)("/user", json={} if method == "put" else None))
    _unauthorized(client.get("/user/ws-token"))


# -- DELETE /user ---------------------------------------------------------------------------------


def test_delete_user_removes_their_rows_and_objects_only(app, person, other) -> None:
    storage = storage_of(app)
    mine = person.create_tryon()
    theirs = other.create_tryon()
    job = person.post(
        "/jobs/weaver",
        json={
            "vton_id": mine["id"],
            "user_snap_s3": mine["user_snap"],
            "uncleaned_outfit_s3": mine["uncleaned_outfit"],
        },
    ).get_json()
    for who in (person, other):
        storage.put(f"outputs/weaver/{who.id}/result.png", b"png", "image/png")
        storage.put(f"outputs/tailor/{who.id}/hash-cutout.png", b"png", "image/png")
    with sessions_of(app)() as session:
        for who in (person, other):
            session.add(
                GarmentAsset(
                    user_id=who.id, content_hash="h", kind="cutout", key=f"outputs/tailor/{who.id}/hash-cutout.png"
                )
            )
        session.commit()

    response = person.delete("/user")
    assert response.status_code == 204 and response.get_data() == b""
    assert "token=;" in response.headers["Set-Cookie"]

    for prefix in (f"uploads/{person.id}/", f"outputs/weaver/{person.id}/", f"outputs/tailor/{person.id}/"):
        assert storage.list(prefix) == []
    assert len(storage.list(f"uploads/{other.id}/")) == 2
    assert storage.list(f"outputs/weaver/{other.id}/") and storage.list(f"outputs/tailor/{other.id}/")
    with sessions_of(app)() as session:
        assert session.get(User, person.id) is None
        assert session.get(TryOn, mine["id"]) is None
        assert session.get(Job, job["job_id"]) is None
        assert session.query(GarmentAsset).filter_by(user_id=person.id).count() == 0
        assert session.get(User, other.id) is not None and session.get(TryOn, theirs["id"]) is not None
        assert session.query(GarmentAsset).filter_by(user_id=other.id).count() == 1
    assert other.get("/vton").get_json()[0]["id"] == theirs["id"]


# -- ws-token ---------------------------------------------------------------------------------------


def test_ws_token_is_short_lived_with_purpose_ws(app, person) -> None:
    response = person.get("/user/ws-token")
    assert response.status_code == 200
    token = response.get_json()["token"]
    settings = settings_of(app)
    claims = jwt.decode(token, settings.jwt_secret, algorithms=["HS256"])
    assert claims["purpose"] == "ws" and claims["sub"] == person.id
    assert claims["exp"] - claims["iat"] == settings.ws_token_ttl_s


def test_password_check_handles_garbage_hashes() -> None:
    assert passwords.check_now("x", "not a hash") is False
    assert passwords.check_now("x" * 100, passwords.hash_now("y" * 8, 4)) is False
