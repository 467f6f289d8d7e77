"""scheduled sends and priority lanes: the account's default lane and the outbox job's lane

A scheduled message's submit job is an outbox row whose ``run_at`` is its send time (no new table: the
dispatcher already waits for ``run_at``); ``priority`` lets a claim take a backlog's high-priority jobs first.

Revision ID: 0007
Revises: 0006

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.add_column(sa.Column("default_priority", sa.String(8), nullable=False, server_default="normal"))
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(sa.Column("priority", sa.SmallInteger, nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_column("priority")
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.drop_column("default_priority")
