"""API keys for the server-to-server API (/v1), and the account's webhook settings.

A signed-in person (session token or cookie, never a key) creates, lists and revokes keys:
POST/GET /api-keys, DELETE /api-keys/<id>. A key ("pt_" + 43 random characters) is shown
once; only its SHA-256 is stored, with a short prefix to list it by. Every /v1 request
looks its key up in the database, so a revocation holds at once on every replica.
GET/PUT /webhook-settings and POST /webhook-settings/rotate-secret manage the default
webhook URL and the signing secret (Standard Webhooks, "whsec_" + base64).
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from flask import Blueprint, Response, g, jsonify
from sqlalchemy import select, update

from gateway import auth, resources
from gateway.validation import parse_body, show
from shared.contracts.v1 import ApiKeyCreate, WebhookSettingsUpdate, check_webhook_url
from shared.db.models import ApiKey, User, utcnow
from shared.errors import BadRequest, NotFound, Unauthorized
from shared.timestamps import iso
from shared.webhooks import new_webhook_secret

bp = Blueprint("apikeys", __name__)
F = TypeVar("F", bound=Callable[..., Any])

KEY_PREFIX = "pt_"
SHOWN_PREFIX_CHARS = 12  # "pt_" and 9 random characters: enough to tell keys apart
LAST_USED_RESOLUTION = timedelta(seconds=60)  # last_used_at is written at most once a minute
MAX_KEYS = 50


def hash_key(key: str) -> str:
    """The stored form of a key: SHA-256 (keys are 256-bit random, so no slow hash is needed)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_to_dict(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "rate_limit": key.rate_limit or resources.settings().api_key_rate_limit,
        "created_at": iso(key.created_at),
        "last_used_at": iso(key.last_used_at),
        "revoked_at": iso(key.revoked_at),
    }


def _rate_limit(value: str | None) -> str | None:
    if value is None:
        return None
    from limits import parse

    try:
        parse(value)
    except ValueError:
        raise BadRequest(
            f"rate_limit must be like '60 per minute' or '5/second', got {show(value)}", field="rate_limit"
        ) from None
    return value


@bp.post("/api-keys")
@auth.login_required
def create_key() -> tuple[Response, int]:
    body = parse_body(ApiKeyCreate)
    name = (body.name or "").strip()
    rate_limit = _rate_limit(body.rate_limit)
    user = auth.current_user()
    session = resources.db()
    live = session.scalars(select(ApiKey.id).where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))).all()
    if len(live) >= MAX_KEYS:
        raise BadRequest(f"you have {len(live)} keys, the most allowed; revoke one first", field="name")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        user_id=user.id, name=name, prefix=secret[:SHOWN_PREFIX_CHARS], key_hash=hash_key(secret), rate_limit=rate_limit
    )
    session.add(key)
    session.commit()
    return jsonify({**key_to_dict(key), "key": secret}), 201


@bp.get("/api-keys")
@auth.login_required
def list_keys() -> Response:
    keys = (
        resources.db()
        .scalars(select(ApiKey).where(ApiKey.user_id == auth.current_user().id).order_by(ApiKey.created_at.desc()))
        .all()
    )
    return jsonify({"keys": [key_to_dict(k) for k in keys]})


@bp.delete("/api-keys/<key_id>")
@auth.login_required
def revoke_key(key_id: str) -> tuple[str, int]:
    session = resources.db()
    key = session.get(ApiKey, key_id)
    if key is None or key.user_id != auth.current_user().id:
        raise NotFound(f"API key {show(key_id)} does not exist", field="key_id")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.commit()
    return "", 204


# -- webhook settings -----------------------------------------------------------------


def webhook_secret_of(user: User) -> str:
    """The user's signing secret, made on first use (the caller commits)."""
    if not user.webhook_secret:
        user.webhook_secret = new_webhook_secret()
    return user.webhook_secret


def _webhook_settings(user: User) -> dict[str, Any]:
    return {"webhook_url": user.webhook_url, "secret": webhook_secret_of(user)}


@bp.get("/webhook-settings")
@auth.login_required
def get_webhook_settings() -> Response:
    body = _webhook_settings(auth.current_user())
    resources.db().commit()
    return jsonify(body)


@bp.put("/webhook-settings")
@auth.login_required
def put_webhook_settings() -> Response:
    url = parse_body(WebhookSettingsUpdate).webhook_url
    user = auth.current_user()
    user.webhook_url = None if url in (None, "") else check_webhook_url(url, "webhook_url")
    reply = _webhook_settings(user)
    resources.db().commit()
    return jsonify(reply)


@bp.post("/webhook-settings/rotate-secret")
@auth.login_required
def rotate_webhook_secret() -> Response:
    user = auth.current_user()
    user.webhook_secret = new_webhook_secret()
    reply = _webhook_settings(user)
    resources.db().commit()
    return jsonify(reply)


# -- authenticating /v1 ----------------------------------------------------------------


def key_from_request() -> str:
    from flask import request

    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("Unauthorized: send your API key as Authorization: Bearer <key>", field="Authorization")
    return value.strip()


def api_key_required(view: F) -> F:
    """Authenticate with an API key (looked up on every request); sets g.user and g.api_key."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        secret = key_from_request()
        session = resources.db()
        key = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(secret))).one_or_none()
        if key is None or key.revoked_at is not None:
            shown = secret[:SHOWN_PREFIX_CHARS] + "..." if secret.startswith(KEY_PREFIX) else "this token"
            raise Unauthorized(f"Unauthorized: the API key {shown} is unknown or revoked", field="Authorization")
        user = session.get(User, key.user_id)
        if user is None:
            raise Unauthorized("Unauthorized: the API key's account no longer exists", field="Authorization")
        now = utcnow()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            resources.begin_write(session)
            session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
            session.commit()
        g.user, g.api_key = user, key
        from gateway.v1.ratelimit import check_rate_limit

        check_rate_limit(key.id, key.rate_limit or resources.settings().api_key_rate_limit)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
