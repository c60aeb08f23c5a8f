"""vtons.result_expired_at and vtons.inputs_expired_at: what the retention sweep removed.

When the sweep deletes a try-on's result (RETENTION_RESULTS_DAYS) or its uploaded photos
(RETENTION_UPLOADS_DAYS), the row stays in the person's history marked expired, instead
of pointing at an object that is gone.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("vtons") as batch:
        batch.add_column(sa.Column("result_expired_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("inputs_expired_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_vtons_created_at", "vtons", ["created_at"])
    op.create_index("ix_garment_assets_created_at", "garment_assets", ["created_at"])
    op.create_index("ix_jobs_finished_at", "jobs", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_finished_at", "jobs")
    op.drop_index("ix_garment_assets_created_at", "garment_assets")
    op.drop_index("ix_vtons_created_at", "vtons")
    with op.batch_alter_table("vtons") as batch:
        batch.drop_column("inputs_expired_at")
        batch.drop_column("result_expired_at")
