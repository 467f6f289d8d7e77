"""Alembic environment: migrations run on a connection handed in by ``smsgate.store.migrate``."""

from __future__ import annotations

from alembic import context

from smsgate.store import tables

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through smsgate.store.migrate
    raise RuntimeError("run migrations with `smsgate migrate`")
context.configure(connection=connection, target_metadata=tables.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
