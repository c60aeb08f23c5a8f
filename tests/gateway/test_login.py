"""Login: the token in the body and as a cookie (HttpOnly, SameSite and Secure as the deployment
needs), one answer for a wrong password and an unknown email, and the legacy `$2a$` hashes and
mixed-case emails of the original Node database."""

from __future__ import annotations

import bcrypt
import jwt
import pytest

from shared.db.models import User
from tests.gateway.helpers import PASSWORD, sessions_of, settings_of

# The OpenWall crypt_blowfish test vector: a `$2a$` hash as the original Node system stored them.
LEGACY_HASH = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"
LEGACY_PASSWORD = "U*U"


def test_login_answers_a_token_and_sets_it_as_an_httponly_lax_cookie(app, client) -> None:
    client.post("/user/signup", json={"user_name": "d", "email": "d@example.com", "password": PASSWORD})
    response = client.post("/user/login", json={"email": "D@example.com", "password": PASSWORD})
    assert response.status_code == 200
    body = response.get_json()
    assert body["message"] and body["user"]["email"] == "d@example.com"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"token={body['token']};")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    settings = settings_of(app)
    claims = jwt.decode(body["token"], settings.jwt_secret, algorithms=["HS256"])
    assert claims["userId"] == claims["sub"] == body["user"]["id"]
    assert claims["ver"] == 0 and claims["exp"] - claims["iat"] == settings.jwt_ttl_s == 24 * 3600
    assert jwt.get_unverified_header(body["token"])["alg"] == "HS256"


def test_the_cookie_is_secure_behind_https(client) -> None:
    client.post("/user/signup", json={"user_name": "e", "email": "e@example.com", "password": PASSWORD})
    response = client.post(
        "/user/login", json={"email": "e@example.com", "password": PASSWORD}, headers={"X-Forwarded-Proto": "https"}
    )
    assert "Secure" in response.headers["Set-Cookie"]


def test_cookie_settings_for_a_cross_site_frontend(make_app) -> None:
    app = make_app(frontend_origins=("https://app.example.com",), cookie_secure=True)
    client = app.test_client()
    client.post("/user/signup", json={"user_name": "f", "email": "f@example.com", "password": PASSWORD})
    cookie = client.post("/user/login", json={"email": "f@example.com", "password": PASSWORD}).headers["Set-Cookie"]
    assert "SameSite=None" in cookie and "Secure" in cookie and "HttpOnly" in cookie


def test_cookie_secure_false_wins_over_https(make_app) -> None:
    app = make_app(cookie_secure=False)
    client = app.test_client()
    client.post("/user/signup", json={"user_name": "g", "email": "g@example.com", "password": PASSWORD})
    response = client.post(
        "/user/login", json={"email": "g@example.com", "password": PASSWORD}, base_url="https://localhost"
    )
    assert "Secure" not in response.headers["Set-Cookie"]


def test_wrong_password_and_unknown_email_answer_the_same_401(client, person) -> None:
    wrong = client.post("/user/login", json={"email": person.email, "password": "not the password"})
    unknown = client.post("/user/login", json={"email": "nobody@example.com", "password": "not the password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()
    assert "Set-Cookie" not in wrong.headers


@pytest.mark.parametrize("body", [{"email": "a@b.co"}, {"password": "x"}, {"email": 1, "password": "x"}])
def test_login_bad_bodies(client, body) -> None:
    assert client.post("/user/login", json=body).status_code == 400


def test_a_legacy_2a_hash_from_the_node_database_still_logs_in(app, client) -> None:
    assert bcrypt.checkpw(LEGACY_PASSWORD.encode(), LEGACY_HASH.encode())
    with sessions_of(app)() as session:
        session.add(User(id="legacy-user", user_name="old", email="old@example.com", password_hash=LEGACY_HASH))
        session.commit()
    response = client.post("/user/login", json={"email": "old@example.com", "password": LEGACY_PASSWORD})
    assert response.status_code == 200
    assert response.get_json()["user"]["id"] == "legacy-user"
    assert client.post("/user/login", json={"email": "old@example.com", "password": "U*U*"}).status_code == 401


def test_a_legacy_mixed_case_email_is_found(app, client) -> None:
    with sessions_of(app)() as session:
        session.add(User(id="legacy-2", user_name="old", email="Mixed@Example.com", password_hash=LEGACY_HASH))
        session.commit()
    assert (
        client.post("/user/login", json={"email": "mixed@example.com", "password": LEGACY_PASSWORD}).status_code == 200
    )
    taken = client.post("/user/signup", json={"user_name": "n", "email": "MIXED@example.com", "password": PASSWORD})
    assert taken.status_code == 400
