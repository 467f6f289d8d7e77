"""opt-out and retention: suppression lists, per-account keywords and retention overrides

* ``suppressions``: the recipients an account must not message (API, STOP keyword, CSV import).
* ``accounts.stop_keywords`` / ``start_keywords`` / ``optout_reply``: an account's own keywords and STOP
  confirmation; ``accounts.retention_days`` / ``content_retention_days``: its own retention.
* ``ix_messages_created_at``: the retention sweep walks messages by age, over every account.

Revision ID: 0009
Revises: 0005

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("msisdn", sa.String(20), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(200)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "msisdn", name="pk_suppressions"),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stop_keywords", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("start_keywords", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("optout_reply", sa.String(length=640), nullable=True))
        batch_op.add_column(sa.Column("retention_days", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("content_retention_days", sa.Integer(), nullable=True))
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_created_at")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        for column in ("content_retention_days", "retention_days", "optout_reply", "start_keywords", "stop_keywords"):
            batch_op.drop_column(column)
    op.drop_table("suppressions")
