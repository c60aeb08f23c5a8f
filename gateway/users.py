"""Accounts: /user/signup, /user/login, /user/logout, GET/PUT/DELETE /user, /user/export, /user/ws-token."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, send_file
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from gateway import auth, resources
from gateway.account_data import delete_account, export_account
from gateway.limits import rate_limited
from gateway.serializers import iso
from gateway.validation import parse_body
from shared.contracts.rest import LoginRequest, SignupRequest, UserUpdate
from shared.db.models import User
from shared.errors import BadRequest, Unauthorized
from shared.routing import NOTIFICATION_STREAM, prefixed

log = logging.getLogger("proteus.gateway")
bp = Blueprint("user", __name__, url_prefix="/user")

LOGIN_FAILED = "Invalid email or password"


def user_to_dict(user: User) -> dict[str, Any]:
    """The user as the API shows it: never the password hash or the token version."""
    return {
        "id": user.id,
        "user_name": user.user_name,
        "email": user.email,
        "createdAt": iso(user.created_at),
        "updatedAt": iso(user.updated_at),
    }


def _find_by_email(email: str, *, excluding: str | None = None) -> User | None:
    query = select(User).where(func.lower(User.email) == email.lower())
    if excluding is not None:
        query = query.where(User.id != excluding)
    return resources.db().scalars(query.limit(1)).first()


def _email_taken(email: str) -> BadRequest:
    return BadRequest(f"email {email!r} is already registered", field="email")


@bp.post("/signup")
@rate_limited
def signup() -> tuple[Response, int]:
    body = parse_body(SignupRequest)
    user_name, email, password = body.user_name, body.email, body.password
    password_hash = auth.hash_password(password)  # before the write lock is taken
    session = resources.db()
    if _find_by_email(email) is not None:
        raise _email_taken(email)
    user = User(id=str(uuid.uuid4()), user_name=user_name, email=email, password_hash=password_hash)
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise _email_taken(email) from None
    return jsonify(user_to_dict(user)), 201


@bp.post("/login")
@rate_limited
@resources.write_lock_later
def login() -> Response:
    body = parse_body(LoginRequest)
    email, password = body.email, body.password
    session = resources.db()
    user = _find_by_email(email.strip())
    session.commit()  # no read transaction stays open while the password is checked
    if user is None:
        auth.burn_password_check(password)
        raise Unauthorized(LOGIN_FAILED)
    if not auth.check_password(password, user.password_hash):
        raise Unauthorized(LOGIN_FAILED)
    if resources.hasher().needs_upgrade(user.password_hash):
        _upgrade_hash(user, password)
    settings = resources.settings()
    token = auth.issue_token(settings, user)
    response = jsonify({"message": "Login successful", "token": token, "user": user_to_dict(user)})
    auth.set_token_cookie(response, settings, token)
    return response


def _upgrade_hash(user: User, password: str) -> None:
    """Re-hash a lower-cost password hash (the original's cost 10) at the current cost."""
    old_hash = user.password_hash
    new_hash = auth.hash_password(password)
    session = resources.db()
    resources.begin_write(session)
    fresh = session.get(User, user.id, populate_existing=True)
    if fresh is not None and fresh.password_hash == old_hash:  # unchanged meanwhile
        fresh.password_hash = new_hash
        session.commit()
        log.info("upgraded the password hash of user %s to cost %d", user.id, resources.hasher().rounds)
    else:
        session.rollback()


@bp.post("/logout")
def logout() -> Response:
    """Revoke every token of the user (all devices) if the request has a valid one; always clear the cookie."""
    settings = resources.settings()
    token, _ = auth.request_token()
    try:
        user = auth.user_for_token(resources.db(), settings, token, purposes=(None,))
    except Unauthorized:
        user = None  # already logged out (another tab, an expired token): nothing to revoke
    if user is not None:
        user.token_version = (user.token_version or 0) + 1
        resources.db().commit()
    response = jsonify({"message": "Logged out"})
    auth.clear_token_cookie(response, settings)
    return response


@bp.get("")
@auth.login_required
def get_user() -> Response:
    return jsonify(user_to_dict(auth.current_user()))


@bp.put("")
@auth.login_required
@resources.write_lock_later
def update_user() -> Response:
    """Change user_name, email and/or password; a new password revokes earlier tokens."""
    body = parse_body(UserUpdate)
    user_name, email, password = body.user_name, body.email, body.password
    password_hash = auth.hash_password(password) if password is not None else None
    session = resources.db()
    resources.begin_write(session)  # after the slow hash: the lock is held only for the update
    user = session.get(User, auth.current_user().id, populate_existing=True)
    if user is None:
        raise auth.unauthorized()
    if email is not None and email != (user.email or "").lower():
        if _find_by_email(email, excluding=user.id) is not None:
            raise _email_taken(email)
        user.email = email
    if user_name is not None:
        user.user_name = user_name
    if password_hash is not None:
        user.password_hash = password_hash
        user.token_version = (user.token_version or 0) + 1
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise _email_taken(email or "") from None
    result = user_to_dict(user)
    settings = resources.settings()
    if password is not None:
        # This session's token was revoked with the others: hand it a new one.
        result["token"] = auth.issue_token(settings, user)
    response = jsonify(result)
    if password is not None:
        auth.set_token_cookie(response, settings, result["token"])
    return response


@bp.delete("")
@auth.login_required
def delete_user() -> Response:
    """Delete the account, every row of it, every stored object and its replayable notifications."""
    user = auth.current_user()
    settings = resources.settings()
    delete_account(
        resources.db(),
        resources.storage(),
        user.id,
        redis_client=resources.redis(),
        stream=prefixed(NOTIFICATION_STREAM, settings.redis_key_prefix),
    )
    response = Response(status=204)
    auth.clear_token_cookie(response, settings)
    return response


@bp.get("/export")
@auth.login_required
def export_user() -> Response:
    """Everything held about the caller as one zip archive (account, try-ons, jobs, images)."""
    user = auth.current_user()
    settings = resources.settings()
    archive = export_account(
        resources.db(),
        resources.storage(),
        user.id,
        redis_client=resources.redis(),
        stream=prefixed(NOTIFICATION_STREAM, settings.redis_key_prefix),
    )
    name = f"proteus-export-{datetime.now(UTC):%Y%m%d}.zip"
    response = send_file(archive, mimetype="application/zip", as_attachment=True, download_name=name)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/ws-token")
@auth.login_required
def ws_token() -> Response:
    """A short-lived token for `WS /ws?token=...` (purpose "ws"; useless on REST routes)."""
    settings = resources.settings()
    return jsonify(
        {
            "token": auth.issue_token(settings, auth.current_user(), purpose=auth.WS_PURPOSE),
            "expiresIn": settings.ws_token_ttl_s,
        }
    )
