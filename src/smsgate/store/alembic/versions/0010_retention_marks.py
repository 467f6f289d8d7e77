"""retention marks: where each scope's blanking pass got to, kept across restarts and shared by nodes

Revision ID: 0010
Revises: 0009

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_marks",
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("scope", name="pk_retention_marks"),
    )


def downgrade() -> None:
    op.drop_table("retention_marks")
