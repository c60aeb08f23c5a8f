"""A user's data as a whole: delete all of it, or export all of it as one archive.

"All of it" is every row that names the user (users, vtons, jobs, garment_assets,
notification_outbox), every
stored object under the user's key prefixes (and any key a row of theirs names outside
them), and the user's entries in the notification replay stream in Redis.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import zipfile
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any

import redis
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.serializers import iso, job_to_dict, tryon_to_dict
from shared.db.models import GarmentAsset, Job, OutboxMessage, TryOn, User
from shared.errors import NotFound
from shared.storage.base import Storage
from shared.uploads import user_prefixes

log = logging.getLogger("proteus.accounts")

SPOOL_BYTES = 32 * 1024 * 1024  # an export larger than this is written to a temporary file
README = """\
Everything Proteus holds about you, as of {when}.

account.json         your account (the password is stored only as a bcrypt hash, not included)
tryons.json          your try-ons
jobs.json            the rendering jobs of your try-ons, with their parameters
garment_assets.json  the garment cut-outs and masks made from your photos
notifications.json   the completion notifications still kept for replay
objects/             every stored image: your uploads (objects/uploads/...), results
                     (objects/outputs/weaver/...) and cut-outs (objects/outputs/tailor/...)
"""


def account_dict(user: User) -> dict[str, Any]:
    """The account without its password hash or token version."""
    return {
        "id": user.id,
        "user_name": user.user_name,
        "email": user.email,
        "createdAt": iso(user.created_at),
        "updatedAt": iso(user.updated_at),
    }


def _user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id!r} does not exist", field="user_id")
    return user


def referenced_keys(session: Session, user_id: str) -> set[str]:
    """Every storage key the user's rows name."""
    keys: set[str] = set()
    for tryon in session.scalars(select(TryOn).where(TryOn.user_id == user_id)):
        keys.update(
            k
            for k in (
                tryon.user_snap,
                tryon.uncleaned_outfit,
                tryon.cleaned_outfit,
                tryon.outfit_try_on,
                tryon.person_mask,
            )
            if k
        )
    keys.update(k for k in session.scalars(select(Job.result_key).where(Job.user_id == user_id)) if k)
    keys.update(session.scalars(select(GarmentAsset.key).where(GarmentAsset.user_id == user_id)))
    return keys


def user_object_keys(session: Session, storage: Storage, user_id: str) -> list[str]:
    """Every stored object of the user: under their prefixes, or named by their rows."""
    keys = {key for prefix in user_prefixes(user_id) for key in storage.list(prefix)}
    keys.update(key for key in referenced_keys(session, user_id) if storage.exists(key))
    return sorted(keys)


def delete_account(
    session: Session, storage: Storage, user_id: str, *, redis_client: redis.Redis | None = None, stream: str = ""
) -> dict[str, int]:
    """Delete every object, row and replay entry of the user; commits. Returns the counts.

    Objects go first: if storage fails, the account is still there to try again.
    """
    outside = {
        key
        for key in referenced_keys(session, user_id)
        if not any(key.startswith(prefix) for prefix in user_prefixes(user_id))
    }
    objects = sum(storage.delete_prefix(prefix) for prefix in user_prefixes(user_id))
    for key in outside:
        storage.delete(key)
    counts = {"objects": objects + len(outside)}
    owned: tuple[tuple[str, Any], ...] = (
        ("notification_outbox", delete(OutboxMessage).where(OutboxMessage.user_id == user_id)),
        ("jobs", delete(Job).where(Job.user_id == user_id)),
        ("garment_assets", delete(GarmentAsset).where(GarmentAsset.user_id == user_id)),
        ("vtons", delete(TryOn).where(TryOn.user_id == user_id)),
        ("users", delete(User).where(User.id == user_id)),
    )
    for table, statement in owned:
        counts[table] = int(getattr(session.execute(statement), "rowcount", 0) or 0)
    session.commit()
    if redis_client is not None and stream:
        counts["notifications"] = purge_notifications(redis_client, stream, user_id)
    log.info("account deleted", extra={"fields": {"outcome": "ok", **counts}})
    return counts


def _notifications(redis_client: redis.Redis, stream: str, user_id: str) -> Iterable[tuple[str, dict[str, Any]]]:
    """(entry id, message) of the user's entries in the replay stream, oldest first."""
    start = "-"
    while True:
        chunk = redis_client.xrange(stream, min=start, max="+", count=1000)
        if not chunk:
            return
        for entry_id, fields in chunk:
            decoded = {_text(k): _text(v) for k, v in (fields or {}).items() if v is not None}
            if decoded.get("user_id") == user_id:
                try:
                    message = json.loads(decoded.get("message") or "{}")
                except ValueError:
                    message = {}
                yield _text(entry_id), message
        start = "(" + _text(chunk[-1][0])


def purge_notifications(redis_client: redis.Redis, stream: str, user_id: str) -> int:
    """XDEL the user's entries from the replay stream; how many."""
    ids = [entry_id for entry_id, _ in _notifications(redis_client, stream, user_id)]
    for start in range(0, len(ids), 500):
        redis_client.xdel(stream, *ids[start : start + 500])
    return len(ids)


def export_account(
    session: Session,
    storage: Storage,
    user_id: str,
    *,
    redis_client: redis.Redis | None = None,
    stream: str = "",
    now: datetime | None = None,
) -> IO[bytes]:
    """A zip archive of everything held about the user, rewound to its start."""
    user = _user(session, user_id)
    when = (now or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    tryons = session.scalars(select(TryOn).where(TryOn.user_id == user_id).order_by(TryOn.created_at)).all()
    jobs = session.scalars(select(Job).where(Job.user_id == user_id).order_by(Job.created_at)).all()
    assets = session.scalars(select(GarmentAsset).where(GarmentAsset.user_id == user_id)).all()
    notifications = []
    if redis_client is not None and stream:
        notifications = [
            dict(message, event_id=entry_id) for entry_id, message in _notifications(redis_client, stream, user_id)
        ]
    documents: dict[str, Any] = {
        "account.json": account_dict(user),
        "tryons.json": [tryon_to_dict(t) for t in tryons],
        "jobs.json": [dict(job_to_dict(j), params=j.params) for j in jobs],
        "garment_assets.json": [_asset_dict(a) for a in assets],
        "notifications.json": notifications,
    }
    archive: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # returned open
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("README.txt", README.format(when=when))
        for name, document in documents.items():
            zf.writestr(name, json.dumps(document, indent=2, default=str))
        for key in user_object_keys(session, storage, user_id):
            # images are compressed already: store them as they are
            zf.writestr(
                zipfile.ZipInfo(f"objects/{key}", date_time=_zip_time(now)),
                storage.get(key),
                compress_type=zipfile.ZIP_STORED,
            )
    archive.seek(0)
    return archive


def _asset_dict(asset: GarmentAsset) -> dict[str, Any]:
    return {
        "id": asset.id,
        "kind": asset.kind,
        "category": asset.category,
        "key": asset.key,
        "confidence": asset.confidence,
        "meta": asset.meta,
        "createdAt": iso(asset.created_at),
    }


def _zip_time(now: datetime | None) -> tuple[int, int, int, int, int, int]:
    moment = now or datetime.now(UTC)
    return (max(moment.year, 1980), moment.month, moment.day, moment.hour, moment.minute, moment.second)


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def read_archive(data: bytes) -> dict[str, bytes]:
    """Every member of an export (tests and people checking one)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}
