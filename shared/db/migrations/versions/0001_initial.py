"""Initial schema: users, vtons (try-ons), jobs, garment_assets.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = sa.String(1024)


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user_name", sa.String(100), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("token_version", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "vtons",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("user_snap", KEY, nullable=False),
        sa.Column("uncleaned_outfit", KEY, nullable=False),
        sa.Column("cleaned_outfit", KEY, nullable=True),
        sa.Column("outfit_try_on", KEY, nullable=True),
        sa.Column("person_mask", KEY, nullable=True),
        sa.Column("category", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("progress_step", sa.Integer(), nullable=True),
        sa.Column("progress_steps", sa.Integer(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vtons")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_vtons_user_id_users"), ondelete="CASCADE"),
        sa.CheckConstraint("status IN ('queued', 'processing', 'done', 'failed')", name=op.f("ck_vtons_status")),
    )
    op.create_index(op.f("ix_vtons_user_id_created_at"), "vtons", ["user_id", "created_at"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("vton_id", sa.String(36), nullable=False),
        sa.Column("job_type", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=True),
        sa.Column("result_key", KEY, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_jobs_user_id_users"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["vton_id"], ["vtons.id"], name=op.f("fk_jobs_vton_id_vtons"), ondelete="CASCADE"),
        sa.UniqueConstraint("user_id", "idempotency_key", name=op.f("uq_jobs_user_id_idempotency_key")),
        sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name=op.f("ck_jobs_status")),
        sa.CheckConstraint("job_type IN ('try_on', 'tailor')", name=op.f("ck_jobs_job_type")),
    )
    op.create_index(op.f("ix_jobs_vton_id"), "jobs", ["vton_id"])
    op.create_index(op.f("ix_jobs_user_id_created_at"), "jobs", ["user_id", "created_at"])
    op.create_table(
        "garment_assets",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("content_hash", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("key", KEY, nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_garment_assets")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_garment_assets_user_id_users"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint(
            "user_id",
            "content_hash",
            "kind",
            "category",
            name=op.f("uq_garment_assets_user_id_content_hash_kind_category"),
        ),
        sa.CheckConstraint("kind IN ('cutout', 'mask')", name=op.f("ck_garment_assets_kind")),
    )


def downgrade() -> None:
    op.drop_table("garment_assets")
    op.drop_index(op.f("ix_jobs_user_id_created_at"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_vton_id"), table_name="jobs")
    op.drop_table("jobs")
    op.drop_index(op.f("ix_vtons_user_id_created_at"), table_name="vtons")
    op.drop_table("vtons")
    op.drop_table("users")
