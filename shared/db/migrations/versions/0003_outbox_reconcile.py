"""notification_outbox (a job's notification, written with its state change) and
jobs.reemitted_at (when the reconciler sent a stalled job's request again).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stream_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_outbox")),
    )
    op.create_index(op.f("ix_notification_outbox_job_id"), "notification_outbox", ["job_id"])
    op.create_index(
        op.f("ix_notification_outbox_published_at_created_at"), "notification_outbox", ["published_at", "created_at"]
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("reemitted_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_jobs_status_updated_at"), "jobs", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_jobs_status_updated_at"), table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("reemitted_at")
    op.drop_index(op.f("ix_notification_outbox_published_at_created_at"), table_name="notification_outbox")
    op.drop_index(op.f("ix_notification_outbox_job_id"), table_name="notification_outbox")
    op.drop_table("notification_outbox")
