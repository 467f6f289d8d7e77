"""security: credential generations, sandbox-only accounts, SIM-message permission, fair webhook claims, reserved
senders

* ``accounts.credential_gen`` and ``tokens.generation``: a rotation or a disable raises the account's generation,
  and a token minted under an older one is refused (every node sees it within the account cache's 5 s).
* ``accounts.sandbox_only`` (the demo account: its traffic goes to sandbox connectors only) and
  ``accounts.allow_sim_messages`` (silent, SIM data download and class-2 binary messages need it).
* ``outbox.account_id``: webhook jobs are claimed round-robin across accounts; existing webhook jobs get theirs
  from their delivery row.
* ``sender_reservations``: alphanumeric senders the operator reserved for one account.

Revision ID: 0003
Revises: 0002

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credential_gen", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("sandbox_only", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("allow_sim_messages", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("generation", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_id", sa.String(length=40), nullable=True))
    op.execute(
        "UPDATE outbox SET account_id = (SELECT w.account_id FROM webhook_deliveries AS w WHERE w.id = outbox.ref) "
        "WHERE kind = 'webhook'"
    )
    op.create_table(
        "sender_reservations",
        sa.Column("sender", sa.String(length=20), nullable=False),
        sa.Column("display", sa.String(length=20), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("sender", name=op.f("pk_sender_reservations")),
    )
    with op.batch_alter_table("sender_reservations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sender_reservations_account_id"), ["account_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sender_reservations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sender_reservations_account_id"))
    op.drop_table("sender_reservations")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("account_id")
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_column("generation")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("allow_sim_messages")
        batch_op.drop_column("sandbox_only")
        batch_op.drop_column("credential_gen")
