"""one account per registered number

A KPN-proxied ``/register`` callback routes a number's inbound SMS to the account that registered it; two rows for
one number (two accounts registering at the same instant) would let either account receive the other's replies.
Keep the earliest registration of each number, then make the number unique.

Revision ID: 0002
Revises: 0001

"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM callbacks WHERE EXISTS (SELECT 1 FROM callbacks AS first WHERE first.msisdn = callbacks.msisdn "
        "AND (first.created_at < callbacks.created_at OR (first.created_at = callbacks.created_at "
        "AND first.account_id < callbacks.account_id)))"
    )
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.drop_index("ix_callbacks_msisdn")
        batch_op.create_index("ix_callbacks_msisdn", ["msisdn"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.drop_index("ix_callbacks_msisdn")
        batch_op.create_index("ix_callbacks_msisdn", ["msisdn"], unique=False)
