"""Passwords, tokens and the current user.

Passwords: bcrypt (so `$2a$`/`$2b$` hashes from the original Node database keep working),
hashed off the event loop by gateway.passwords at Settings.bcrypt_rounds.
Tokens: HS256 JWTs signed with Settings.jwt_secret, claims `userId` and `sub` (the user id),
`ver` (the user's token_version: bumping it on logout or password change revokes every
earlier token), `iat`, `exp`, and `purpose: "ws"` on the short-lived WebSocket tokens.
A request authenticates with `Authorization: Bearer <token>` or the `token` cookie.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

import jwt
from flask import Response, g, request
from sqlalchemy import Connection, Select, bindparam, exists, func, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Request as WerkzeugRequest

from gateway import resources
from shared.config import Settings
from shared.db.hot_reads import fetch_all
from shared.db.models import User
from shared.errors import Unauthorized

COOKIE_NAME = "token"
WS_PURPOSE = "ws"
F = TypeVar("F", bound=Callable[..., Any])


def unauthorized() -> Unauthorized:
    return Unauthorized("Unauthorized")


# -- passwords ------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    """A new hash at the current cost, computed on the hashing pool."""
    return resources.hasher().hash(password)


def check_password(password: str, password_hash: str | None) -> bool:
    """True if `password` matches (on the hashing pool); False for a wrong one or an unusable hash."""
    return resources.hasher().verify(password, password_hash)


def burn_password_check(password: str) -> None:
    """Spend a hash check's time at the current cost, so an unknown email answers as slowly as a wrong password."""
    resources.hasher().verify_unknown(password)


# -- tokens ------------------------------------------------------------------------------------


def issue_token(settings: Settings, user: User, *, purpose: str | None = None) -> str:
    now = int(time.time())
    ttl = settings.ws_token_ttl_s if purpose == WS_PURPOSE else settings.jwt_ttl_s
    claims: dict[str, Any] = {
        "userId": user.id,
        "sub": user.id,
        "ver": user.token_version or 0,
        "iat": now,
        "exp": now + ttl,
    }
    if purpose:
        claims["purpose"] = purpose
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def decode_token(settings: Settings, token: str) -> dict[str, Any]:
    """The claims of a well-signed, unexpired token; Unauthorized otherwise.

    A token's signature is checked once: its claims are kept (by the whole token and the
    secret, a few thousand at most), and only its expiry is checked again. A browser sends
    the same token with every request, and the check was a tenth of a history request.
    """
    key = (settings.jwt_secret, token)
    claims = _verified.get(key)
    if claims is None:
        try:
            claims = jwt.decode(token, settings.jwt_secret, algorithms=["HS256"], options={"require": ["exp"]})
        except jwt.PyJWTError:
            raise unauthorized() from None
        user_id = claims.get("sub") or claims.get("userId")
        if not isinstance(user_id, str) or not user_id:
            raise unauthorized()
        if len(_verified) >= VERIFIED_TOKENS_KEPT:
            _verified.pop(next(iter(_verified)))  # the oldest
        _verified[key] = claims
    elif not _unexpired(claims):
        _verified.pop(key, None)
        raise unauthorized()
    return dict(claims)


VERIFIED_TOKENS_KEPT = 4096
_verified: dict[tuple[str, str], dict[str, Any]] = {}


def _unexpired(claims: dict[str, Any]) -> bool:
    """pyjwt's expiry rule (exp is a number, now < exp; no leeway) for a token checked before."""
    exp = claims.get("exp")
    return isinstance(exp, int | float) and not isinstance(exp, bool) and time.time() < exp


def token_user_id(claims: dict[str, Any]) -> str:
    return str(claims.get("sub") or claims.get("userId"))


def request_token(*, allow_query: bool = False, of: WerkzeugRequest | None = None) -> tuple[str | None, str]:
    """(token, where) from the Bearer header, the `token` query parameter (WebSocket) or the
    cookie, of `of` (default: Flask's current request)."""
    req = request if of is None else of
    header = req.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        return (value.strip() or None) if scheme.lower() == "bearer" else None, "header"
    if allow_query and req.args.get("token"):
        return req.args["token"], "query"
    cookie = req.cookies.get(COOKIE_NAME)
    return (cookie or None), "cookie"


def user_for_token(
    session: Session, settings: Settings, token: str | None, *, purposes: tuple[str | None, ...]
) -> User:
    """The live user a token names; Unauthorized for a bad, expired, revoked or misused token."""
    user_id, version = _token_claims(settings, token, purposes)
    user = session.get(User, user_id)
    if user is None or version != (user.token_version or 0):
        raise unauthorized()
    return user


def user_id_for_token(
    db: Session | Connection, settings: Settings, token: str | None, *, purposes: tuple[str | None, ...]
) -> str:
    """user_for_token's checks, reading only the user's token version (no ORM object), on a
    session's connection or on a plain connection."""
    user_id, version = _token_claims(settings, token, purposes)
    connection = db.connection() if isinstance(db, Session) else db
    rows = fetch_all(connection, _token_version_query(), {"id": user_id})
    if not rows or version != (rows[0].token_version or 0):
        raise unauthorized()
    return user_id


def _token_claims(settings: Settings, token: str | None, purposes: tuple[str | None, ...]) -> tuple[str, int]:
    """(user id, token version) of a well-signed, unexpired token of one of `purposes`."""
    if not token:
        raise unauthorized()
    claims = decode_token(settings, token)
    if claims.get("purpose") not in purposes:
        raise unauthorized()
    version = claims.get("ver", 0)  # tokens of the original system carry none
    if isinstance(version, bool) or not isinstance(version, int):
        raise unauthorized()
    return token_user_id(claims), version


@functools.cache
def _token_version_query() -> Select[Any]:
    return select(User.token_version).where(User.id == bindparam("id"))


def login_required(view: F) -> F:
    """Authenticate the request (login tokens only) and put the user on `g.user`."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token, _ = request_token()
        g.user = user_for_token(resources.db(), resources.settings(), token, purposes=(None,))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def login_required_by_id(view: F) -> F:
    """login_required for a hot read-only view that needs only the caller's id
    (`current_user_id()`): the same checks, without loading the user as an ORM object.

    The token's signature, expiry and purpose are checked first. Whether it was revoked (its
    version against the user's) may be proven by the view's own query: one that filters on
    `live_token_clause()` and found rows calls `token_proven_live()`, saving a round trip.
    Otherwise the version is read after the view, and a revoked token answers 401 instead
    of what the view returned.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token, _ = request_token()
        g.user_id, g.token_version = _token_claims(resources.settings(), token, (None,))
        g.token_live = False
        try:
            response = view(*args, **kwargs)
        except Exception:
            _check_token_version()  # a revoked token answers 401 before any other error
            raise
        _check_token_version()
        return response

    return wrapper  # type: ignore[return-value]


def _check_token_version() -> None:
    if g.token_live:
        return
    rows = fetch_all(resources.read_connection(), _token_version_query(), {"id": g.user_id})
    if not rows or g.token_version != (rows[0].token_version or 0):
        raise unauthorized()
    g.token_live = True


def live_token_clause() -> Any:
    """A WHERE clause true only while the caller's token is live: its user exists with the
    token's version (bound at execution as `user_id` and `token_version`: `live_token_params()`)."""
    return exists().where(
        User.id == bindparam("user_id"), func.coalesce(User.token_version, 0) == bindparam("token_version")
    )


def live_token_params() -> dict[str, Any]:
    return {"user_id": g.user_id, "token_version": g.token_version}


def token_proven_live() -> None:
    """The view's query, filtered by `live_token_clause()`, found rows: the token is live."""
    g.token_live = True


def current_user() -> User:
    return g.user  # type: ignore[no-any-return]


def current_user_id() -> str:
    """The caller's id (under login_required or login_required_by_id)."""
    user = g.get("user")
    return str(user.id) if user is not None else str(g.user_id)


# -- the cookie ---------------------------------------------------------------------------


def set_token_cookie(response: Response, settings: Settings, token: str) -> None:
    """HttpOnly; Secure over HTTPS (or per COOKIE_SECURE); SameSite=None (and so Secure) for a cross-site frontend."""
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=settings.jwt_ttl_s,
        httponly=True,
        secure=_cookie_secure(settings),
        samesite=_same_site(settings),
        path="/",
    )


def clear_token_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        COOKIE_NAME,
        path="/",
        httponly=True,
        secure=_cookie_secure(settings),
        samesite=_same_site(settings),
    )


def _same_site(settings: Settings) -> str:
    return "None" if settings.frontend_origins else "Lax"


def _cookie_secure(settings: Settings) -> bool:
    """Browsers drop a SameSite=None cookie without Secure (and accept Secure on localhost)."""
    if _same_site(settings) == "None":
        return True
    return settings.cookie_secure if settings.cookie_secure is not None else request.is_secure
