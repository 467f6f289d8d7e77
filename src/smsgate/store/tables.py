"""Every table, on one MetaData; the Alembic migrations must build exactly this (see test_migrations).

Times are UTC epoch seconds (floats): cheap to compare and to index on both SQLite and PostgreSQL.
Money is an integer count of 1e-8 (``core.pricing.to_units``), as Vonage shows 8 decimals.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("api_key", sa.String(40), nullable=False, unique=True),
    sa.Column("secret_salt", sa.String(64), nullable=False),
    sa.Column("secret_hash", sa.String(128), nullable=False),
    # Vonage request/webhook signing needs the shared secret itself (an HMAC key), so it cannot be hashed.
    sa.Column("signature_secret", sa.String(128)),
    sa.Column("signature_method", sa.String(16), nullable=False, server_default="md5hash"),
    sa.Column("sign_webhooks", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("level", sa.String(8), nullable=False, server_default="demo"),
    sa.Column("default_sender", sa.String(20)),
    sa.Column("may_choose_sender", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("allowed_senders", sa.JSON),
    sa.Column("allowed_countries", sa.JSON),
    sa.Column("demo_allowlist", sa.JSON),
    sa.Column("blocked_prefixes", sa.JSON),
    sa.Column("quota_limit", sa.Integer),
    sa.Column("quota_interval", sa.Integer, nullable=False, server_default="1"),
    sa.Column("quota_unit", sa.String(8), nullable=False, server_default="day"),
    sa.Column("rate_limit_tps", sa.Float),
    sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("receipt_url", sa.String(2000)),
    sa.Column("inbound_url", sa.String(2000)),
    sa.Column("webhook_method", sa.String(8), nullable=False, server_default="POST"),
    sa.Column("webhook_format", sa.String(8), nullable=False, server_default="json"),
    sa.Column("created_at", sa.Float, nullable=False),
    # Raised when the secret is rotated or the account disabled: tokens minted under an older generation are dead
    # (checked against the cached account, so revocation costs the send path no query; see credentials.Credentials).
    sa.Column("credential_gen", sa.Integer, nullable=False, server_default="0"),
    # Traffic only to sandbox connectors (the demo account); silent / SIM-data / class-2 binary messages allowed.
    sa.Column("sandbox_only", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("allow_sim_messages", sa.Boolean, nullable=False, server_default=sa.false()),
    # A sub-account's parent: it pays for the sub-account's traffic and sees its messages (one level deep).
    sa.Column("parent_id", sa.String(40), index=True),
    # Opt-out keywords (None: core.optout's defaults) and the confirmation sent on a STOP (None: none is sent).
    sa.Column("stop_keywords", sa.JSON),
    sa.Column("start_keywords", sa.JSON),
    sa.Column("optout_reply", sa.String(640)),
    # Retention overrides in days (None: SMSGATE_RETENTION_DAYS / SMSGATE_CONTENT_RETENTION_DAYS; 0: keep forever).
    sa.Column("retention_days", sa.Integer),
    sa.Column("content_retention_days", sa.Integer),
    # the dispatcher lane of a message that names none: high, normal or bulk (core.schedule.Priority)
    sa.Column("default_priority", sa.String(8), nullable=False, server_default="normal"),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("account_id", sa.String(40), nullable=False, index=True),
    sa.Column("issued_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
    sa.Column("generation", sa.Integer, nullable=False, server_default="0"),  # the account's credential_gen
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", sa.String(40), nullable=False),
    sa.Column("direction", sa.String(8), nullable=False),
    sa.Column("dialect", sa.String(16), nullable=False),
    sa.Column("sender", sa.String(40), nullable=False),
    sa.Column("recipient", sa.String(40), nullable=False),
    sa.Column("text", sa.Text),
    sa.Column("encoding", sa.String(8), nullable=False),
    sa.Column("parts_count", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("connector", sa.String(64)),
    sa.Column("network", sa.String(8)),
    sa.Column("country", sa.String(2)),
    sa.Column("price", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("client_ref", sa.String(100)),
    sa.Column("callback_url", sa.String(2000)),
    sa.Column("meta", sa.JSON),
    sa.Column("error_code", sa.Integer),
    sa.Column("error_text", sa.String(500)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("batch_id", sa.String(36), index=True),  # the batch it came in (``batches``), if any
    sa.Index("ix_messages_account_created", "account_id", "created_at"),
    sa.Index("ix_messages_recipient_sender", "recipient", "sender"),
    sa.Index("ix_messages_created_at", "created_at"),  # the retention sweep walks messages by age
)

parts = sa.Table(
    "parts",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("message_id", sa.String(36), nullable=False, index=True),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("concat_ref", sa.Integer, nullable=False, server_default="0"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("connector", sa.String(64)),
    sa.Column("network_id", sa.String(80)),
    sa.Column("data_coding", sa.Integer, nullable=False),
    sa.Column("udh", sa.LargeBinary, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("text", sa.Text),
    sa.Column("price", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error_code", sa.Integer),
    sa.Column("error_text", sa.String(500)),
    sa.Column("submitted_at", sa.Float),
    sa.Column("done_at", sa.Float),
    sa.Index("ix_parts_connector_network_id", "connector", "network_id"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(36), nullable=False, index=True),
    sa.Column("part_id", sa.String(32)),
    sa.Column("account_id", sa.String(40), nullable=False),
    sa.Column("type", sa.String(24), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("data", sa.JSON),
)

# One row per unit of work that must happen after a commit (submit a message, deliver a webhook).
# A claim is a lease: ``claimed_by`` a node until ``claimed_until``; dead nodes' claims are taken back.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("ref", sa.String(40), nullable=False),
    sa.Column("run_at", sa.Float, nullable=False),
    sa.Column("claimed_by", sa.String(40)),
    sa.Column("claimed_until", sa.Float),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.Float, nullable=False),
    # whose job it is (webhook jobs): deliveries are claimed round-robin across accounts (webhooks.sender)
    sa.Column("account_id", sa.String(40)),
    # submit jobs: the message's lane (0 high, 1 normal, 2 bulk), so a backlog in the outbox is claimed high first
    sa.Column("priority", sa.SmallInteger, nullable=False, server_default="1"),
    sa.UniqueConstraint("kind", "ref"),
    sa.Index("ix_outbox_kind_run_at", "kind", "run_at"),
)

nodes = sa.Table(
    "nodes",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
    sa.Column("info", sa.JSON),
)

# Receipts whose submit_sm_resp was not stored yet: held here and applied when the part's id appears.
pending_receipts = sa.Table(
    "pending_receipts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connector", sa.String(64), nullable=False),
    sa.Column("network_id", sa.String(80), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("error_code", sa.Integer, nullable=False, server_default="0"),
    sa.Column("raw", sa.Text),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Index("ix_pending_receipts_connector_network_id", "connector", "network_id"),
)

numbers = sa.Table(
    "numbers",
    metadata,
    sa.Column("msisdn", sa.String(20), primary_key=True),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("type", sa.String(20), nullable=False, server_default="mobile-lvn"),
    sa.Column("features", sa.JSON),
    sa.Column("cost", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("account_id", sa.String(40), index=True),
    sa.Column("mo_http_url", sa.String(2000)),
    sa.Column("settings", sa.JSON),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# KPN-proxied Nexmo ``/register``: a demo callback for the account's own test number.
callbacks = sa.Table(
    "callbacks",
    metadata,
    sa.Column("account_id", sa.String(40), primary_key=True),
    sa.Column("msisdn", sa.String(20), primary_key=True),
    sa.Column("callback_url", sa.String(2000), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_callbacks_msisdn", "msisdn", unique=True),  # one account per number (migration 0002)
)

# Alphanumeric senders the operator reserved for one account: no other account may send with them, and
# inbound messages addressed to them belong to it (store.ownership). Keyed by the casefolded name.
sender_reservations = sa.Table(
    "sender_reservations",
    metadata,
    sa.Column("sender", sa.String(20), primary_key=True),
    sa.Column("display", sa.String(20), nullable=False),
    sa.Column("account_id", sa.String(40), nullable=False, index=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

# Parts of concatenated inbound messages waiting for their siblings.
inbound_fragments = sa.Table(
    "inbound_fragments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connector", sa.String(64), nullable=False),
    sa.Column("source", sa.String(40), nullable=False),
    sa.Column("destination", sa.String(40), nullable=False),
    sa.Column("ref", sa.Integer, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("data_coding", sa.Integer, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.UniqueConstraint("connector", "source", "destination", "ref", "seq"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", sa.String(40), nullable=False),
    sa.Column("message_id", sa.String(36), index=True),
    sa.Column("event", sa.String(24), nullable=False),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("content_type", sa.String(60), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.String(500)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    # the delivery's own retry schedule, comma-separated seconds after each failed try (KPN batch receipts:
    # "60,120,240"); none: the sender's exponential backoff within its retry window
    sa.Column("retry_delays", sa.String(200)),
    sa.Index("ix_webhook_deliveries_account_created", "account_id", "created_at"),
)

# One row per batch call (KPN's ``/communication/kpn/sms/send``, our ``/v1/batches``), written in the transaction
# that stores its messages; its id is KPN's ``document_id``. Per-status counts are read from its messages.
batches = sa.Table(
    "batches",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # kpn | api
    sa.Column("messages", sa.Integer, nullable=False),  # accepted, one per recipient
    sa.Column("parts", sa.Integer, nullable=False),
    sa.Column("price", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("refused", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.Float, nullable=False),
    # ``/v1/batches``' Idempotency-Key, stored with the batch in its transaction, and the 201 it answered: a repeat
    # gets that answer again (the key and the batch commit together, so a crash cannot split them)
    sa.Column("idempotency_key", sa.String(100)),
    sa.Column("answer", sa.JSON),
    sa.UniqueConstraint("account_id", "idempotency_key"),
    sa.Index("ix_batches_account_created", "account_id", "created_at"),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.String(36), nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("latency_ms", sa.Float),
    sa.Column("error", sa.String(500)),
)

# Connectors the operator paused (``POST /v1/connectors/{name}/pause``): every node reads this, so a pause holds for
# all nodes and across restarts.
connector_pauses = sa.Table(
    "connector_pauses",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(500)),
    sa.Column("paused_at", sa.Float, nullable=False),
)

# What an account's sandbox handset answers (``PUT /sandbox/handsets/{msisdn}/script``): its rules, and what the last
# message it matched led to (a reply sent, or why not), so a test can see why no reply came.
sandbox_scripts = sa.Table(
    "sandbox_scripts",
    metadata,
    sa.Column("account_id", sa.String(40), primary_key=True),
    sa.Column("msisdn", sa.String(40), primary_key=True),  # E.164 with "+", as messages store numbers
    sa.Column("rules", sa.JSON, nullable=False),
    sa.Column("last_run", sa.JSON),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# How the sandbox network treats an account's own traffic (``PUT /sandbox/behaviour``); no row: the normal network.
sandbox_behaviours = sa.Table(
    "sandbox_behaviours",
    metadata,
    sa.Column("account_id", sa.String(40), primary_key=True),
    sa.Column("behaviour", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# The answers kept for ``Idempotency-Key`` retries (``services.idempotency``): written in the accept transaction of
# the message they answer, so a crash between commit and reply still leaves the answer to replay; swept after
# ``SMSGATE_IDEMPOTENCY_HOURS``. The primary key is what makes one of two concurrent nodes lose.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("account_id", sa.String(40), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("message_id", sa.String(40)),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
)

# Recipients an account must not message (they replied STOP, or the account said so): refused at accept in every
# dialect (services.suppressions keeps each account's list in memory, refreshed when a change is announced).
suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("account_id", sa.String(40), primary_key=True),
    sa.Column("msisdn", sa.String(20), primary_key=True),  # digits, no "+" (core.numbers.Number.digits)
    sa.Column("source", sa.String(8), nullable=False),  # api | keyword | import
    sa.Column("reason", sa.String(200)),
    sa.Column("created_at", sa.Float, nullable=False),
)

# How far the content-retention sweep's blanking pass got, per scope (``core.retention.Scope.key``, hashed): kept in
# the database so a restarted node, or another PostgreSQL node, goes on from there instead of walking every
# already-blanked row again inside a write transaction.
retention_marks = sa.Table(
    "retention_marks",
    metadata,
    sa.Column("scope", sa.String(64), primary_key=True),  # sha256 hex of the scope's key
    sa.Column("created_at", sa.Float, nullable=False),  # (created_at, id) of the last message blanked
    sa.Column("message_id", sa.String(36), nullable=False),
)
