"""connectors paused by the operator

``POST /v1/connectors/{name}/pause`` takes a connector out of routing on every node and across restarts, so the
pause is a row every node reads rather than a flag in one process.

Revision ID: 0004
Revises: 0003

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connector_pauses",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(500)),
        sa.Column("paused_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_connector_pauses"),
    )


def downgrade() -> None:
    op.drop_table("connector_pauses")
