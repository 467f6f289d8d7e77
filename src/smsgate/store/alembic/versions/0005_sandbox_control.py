"""sandbox handset scripts and per-account network behaviour

Scripts and behaviour switches are read by whichever node submits an account's message, and survive restarts, so
they are rows (cached by every node, refreshed when a change is announced) rather than state in one process.

Revision ID: 0005
Revises: 0004

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sandbox_scripts",
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("msisdn", sa.String(40), nullable=False),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("last_run", sa.JSON),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "msisdn", name="pk_sandbox_scripts"),
    )
    op.create_table(
        "sandbox_behaviours",
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("behaviour", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("account_id", name="pk_sandbox_behaviours"),
    )


def downgrade() -> None:
    op.drop_table("sandbox_behaviours")
    op.drop_table("sandbox_scripts")
