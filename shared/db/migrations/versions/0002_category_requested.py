"""vtons.category_requested: the category the person asked for ("auto" included).

`category` becomes the one the try-on used (tailor's answer for "auto"), so the page can
say "(detected)" wherever it is opened.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("vtons") as batch:
        batch.add_column(sa.Column("category_requested", sa.String(32), nullable=True))
    op.execute("UPDATE vtons SET category_requested = category")


def downgrade() -> None:
    with op.batch_alter_table("vtons") as batch:
        batch.drop_column("category_requested")
