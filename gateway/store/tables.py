"""Table definitions (SQLAlchemy Core); the Alembic migrations create exactly these."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

submissions = Table(
    "submissions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("message_uuid", String(64), nullable=False),
    Column("sender", String(200), nullable=False),
    Column("content_sha256", String(64), nullable=False),
    # The XML's own hash: evidence of what was received, kept after the payload is erased.
    Column("xml_sha256", String(64)),
    Column("message_type", String(200), nullable=False),
    Column("schema_set", String(200), nullable=False),
    Column("municipality", String(8), nullable=False),
    # kennung values: xgb:Text allows 255 characters, XBau's DIN 91379 datatypeC has no
    # limit; the intake limit is in limits.py.
    Column("recipient", Text, nullable=False),
    # message | transport | sender (RecipientSource)
    Column("recipient_source", String(20), nullable=False, server_default="message"),
    Column("author", Text),
    Column("leika", String(14)),
    Column("config_version", String(64), nullable=False),
    Column("received_at", Float, nullable=False),
    # Raw XML; NULL once erased by retention (the event log stays).
    Column("xml", LargeBinary),
    # When the payload (XML and attachment references) was erased; NULL while kept.
    Column("payload_erased_at", Float),
    # The accept's W3C trace context: the worker continues the submission's trace from it
    # (gateway/telemetry/traces.py); NULL when traces are off.
    Column("traceparent", String(55)),
    Index("ix_submissions_retention", "payload_erased_at", "received_at"),
    # The admin console's lists: newest first, paged by (received_at, id), one index per
    # filter ending in that pair (gateway/store/browse.py, bench/console_paging.py).
    Index("ix_submissions_received", "received_at", "id"),
    Index("ix_submissions_municipality", "municipality", "received_at", "id"),
    Index("ix_submissions_sender", "sender", "received_at", "id"),
    Index("ix_submissions_message_type", "message_type", "received_at", "id"),
    # A nachrichtenUUID is unique per sender: another sender can neither block one nor
    # learn that it exists. message_uuid first, so the index serves lookups by UUID.
    UniqueConstraint("message_uuid", "sender", name="uq_submissions_message_uuid_sender"),
)

attachments = Table(
    "attachments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("submission_id", String(36), ForeignKey("submissions.id"), nullable=False, index=True),
    # As the sender named it (multipart allows any length; limits.py caps it) ...
    Column("name", Text, nullable=False),
    # ... and the name adapters write it under (sdk.attachment_file_name), fixed at intake so
    # a redelivery after an upgrade writes the same file; NULL in rows stored before.
    Column("file_name", String(255)),
    Column("content_type", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    # Blob clean-up asks "does anything still reference this content?"
    Index("ix_attachments_sha256", "sha256"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("submission_id", String(36), ForeignKey("submissions.id"), nullable=False, index=True),
    Column("destination", String(200), nullable=False),
    Column("adapter", String(200), nullable=False),
    Column("state", String(20), nullable=False),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("receipt_reference", Text),
    Column("receipt_message", Text),
    Column("problem", Text),
    Column("updated_at", Float, nullable=False),
    # The configuration (routes and mapping) the last attempt used; NULL before any attempt.
    Column("config_version", String(64)),
    # The console's state filter: the few pending or dead submissions without a scan.
    Index("ix_deliveries_state", "state", "submission_id"),
    # The queue gauges of /metrics (pending and dead per destination, oldest pending) read
    # only the index: delivered rows, the vast majority, are never touched by a scrape.
    Index("ix_deliveries_state_destination", "state", "destination", "updated_at"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("submission_id", String(36), ForeignKey("submissions.id"), nullable=False),
    Column("delivery_id", String(36)),
    Column("at", Float, nullable=False),
    Column("kind", String(50), nullable=False),
    Column("detail", Text),
    Index("ix_events_submission", "submission_id", "id"),
)

# The embedded queue, and the outbox of external brokers: one row per delivery to publish.
work_items = Table(
    "work_items",
    metadata,
    Column("delivery_id", String(36), primary_key=True),
    Column("destination", String(200), nullable=False),
    Column("state", String(10), nullable=False),  # outbox | ready | leased | dead
    Column("available_at", Float, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", Float),
    Column("attempts", Integer, nullable=False, default=0),
    Column("reason", Text),
    Index("ix_work_items_state_available", "state", "available_at"),
)

# Who did what (admin actions, from the API, the CLI and signals); append-only.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("target", Text),
    Column("outcome", String(20), nullable=False),  # ok | refused | failed
    Column("detail", Text),
    Index("ix_audit_log_at", "at"),
)
