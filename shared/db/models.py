"""The data model (docs/architecture.md): users, try-ons, jobs and tailor assets.

Primary keys are string UUIDs; timestamps are timezone-aware UTC on SQLite and PostgreSQL
alike; rows that belong to a user go when the user goes (ON DELETE CASCADE).
The schema is created by the Alembic migrations in `migrations/`, never by create_all.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, get_args

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.contracts.fields import JobStatus, JobType, TryOnStatus

TRYON_STATUSES: tuple[str, ...] = get_args(TryOnStatus)
JOB_STATUSES: tuple[str, ...] = get_args(JobStatus)
JOB_TYPES: tuple[str, ...] = get_args(JobType)
ASSET_KINDS = ("cutout", "mask")
KEY = String(1024)  # storage keys

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps none)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}

    def __init__(self, **kwargs: Any) -> None:
        """Keyword construction (as SQLAlchemy's default) with the id known at once, before flush."""
        cls = type(self)
        for name, value in kwargs.items():
            if not hasattr(cls, name):
                raise TypeError(f"{name!r} is an invalid keyword argument for {cls.__name__}")
            setattr(self, name, value)
        if kwargs.get("id") is None:
            self.id = new_id()


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class User(Timestamps, Base):
    """An account; bumping `token_version` revokes every token issued before."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    # The public API's webhooks: the signing secret ("whsec_..."), made on first use and
    # rotatable, and the URL runs without their own webhook_url report to.
    webhook_secret: Mapped[str | None] = mapped_column(String(100))
    webhook_url: Mapped[str | None] = mapped_column(String(2048))


class TryOn(Timestamps, Base):
    """One try-on as the user sees it: inputs, result key, status and progress."""

    __tablename__ = "vtons"
    __table_args__ = (
        CheckConstraint(_in("status", TRYON_STATUSES), name="status"),
        Index(None, "user_id", "created_at"),
        Index(None, "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    user_snap: Mapped[str] = mapped_column(KEY)
    uncleaned_outfit: Mapped[str] = mapped_column(KEY)
    cleaned_outfit: Mapped[str | None] = mapped_column(KEY)
    outfit_try_on: Mapped[str | None] = mapped_column(KEY)
    person_mask: Mapped[str | None] = mapped_column(KEY)
    category: Mapped[str | None] = mapped_column(String(32))
    # What the person asked for ("auto" included); `category` is what the try-on used (tailor's answer).
    category_requested: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(Text)
    progress_step: Mapped[int | None] = mapped_column(Integer)
    progress_steps: Mapped[int | None] = mapped_column(Integer)
    # Set by the retention sweep when it deleted the result / the uploaded photos.
    result_expired_at: Mapped[datetime | None] = mapped_column()
    inputs_expired_at: Mapped[datetime | None] = mapped_column()


class Job(Timestamps, Base):
    """One unit of GPU work (a weave or a tailor run) for a try-on; `params` is its request."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        CheckConstraint(_in("status", JOB_STATUSES), name="status"),
        CheckConstraint(_in("job_type", JOB_TYPES), name="job_type"),
        Index(None, "vton_id"),
        Index(None, "user_id", "created_at"),
        Index(None, "status", "updated_at"),
        Index(None, "finished_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    vton_id: Mapped[str] = mapped_column(String(36), ForeignKey("vtons.id", ondelete="CASCADE"))
    job_type: Mapped[str] = mapped_column(String(16), default="try_on")
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    step: Mapped[int] = mapped_column(Integer, default=0)
    steps: Mapped[int | None] = mapped_column(Integer)
    result_key: Mapped[str | None] = mapped_column(KEY)
    error: Mapped[str | None] = mapped_column(Text)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    model: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    finished_at: Mapped[datetime | None] = mapped_column()
    # When the reconciler sent the request again after no progress (once per job).
    reemitted_at: Mapped[datetime | None] = mapped_column()

    # Every sample's result key (num_samples > 1); result_key is the first.
    result_keys: Mapped[list[str] | None] = mapped_column(JSON)
    error_code: Mapped[str | None] = mapped_column(String(64))  # the ProteusError code of a failure


class OutboxMessage(Base):
    """A completion notification, written in the transaction that finished the job and
    published afterwards (once, keyed by `id`) by whoever comes next (shared.notifications)."""

    __tablename__ = "notification_outbox"
    __table_args__ = (Index(None, "job_id"), Index(None, "published_at", "created_at"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    job_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(String(36))
    message: Mapped[str] = mapped_column(Text)  # the completion as JSON, without its event_id
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column()
    stream_id: Mapped[str | None] = mapped_column(String(64))  # its entry in the replay stream


class ApiKey(Base):
    """A key for the server-to-server API (/v1): only its SHA-256 is stored, listed by prefix."""

    __tablename__ = "api_keys"
    __table_args__ = (Index(None, "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    rate_limit: Mapped[str | None] = mapped_column(String(64))  # None: API_KEY_RATE_LIMIT
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class WebhookDelivery(Base):
    """One webhook message (one per finished job: its id is the `webhook-id`) and its attempts."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index(None, "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # "msg_<job id>"
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    job_id: Mapped[str] = mapped_column(String(36))
    url: Mapped[str] = mapped_column(String(2048))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column()


class GarmentAsset(Base):
    """A tailor output kept for reuse: the cutout or mask of one garment image, per category.

    A cutout does not depend on the category: it is stored with category '' so that the
    unique constraint (NULLs are distinct in SQL) still holds one row per garment.
    """

    __tablename__ = "garment_assets"
    __table_args__ = (
        UniqueConstraint("user_id", "content_hash", "kind", "category"),
        CheckConstraint(_in("kind", ASSET_KINDS), name="kind"),
        Index(None, "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    content_hash: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32), default="")
    key: Mapped[str] = mapped_column(KEY)
    confidence: Mapped[float | None] = mapped_column(Float)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
