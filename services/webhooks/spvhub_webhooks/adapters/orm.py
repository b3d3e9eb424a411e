"""Tables of the webhooks service (SQLAlchemy Core); the Alembic history in migrations/ follows this file."""
from __future__ import annotations

from spvhub_common.access import access_table
from spvhub_common.messaging import add_messaging_tables
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

metadata = MetaData()
outbox, inbox = add_messaging_tables(metadata)
access_grants = access_table(metadata)

# An integrator's receiver, owned by a company (the tenant) and managed by its verified owners and administrators.
endpoints = Table(
    "endpoints", metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_cif", String(16), nullable=False),
    Column("url", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("event_types", ARRAY(String(120)), nullable=False),
    Column("cifs", ARRAY(String(16)), nullable=False),
    Column("secret_enc", LargeBinary, nullable=False),  # SecretBox, bound to the endpoint id
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("disabled_reason", String(32)),  # manual | failing
    Column("disabled_at", DateTime(timezone=True)),
    Column("failing_since", DateTime(timezone=True)),  # first failure since the last success
    Column("last_error", Text),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("secret_rotated_at", DateTime(timezone=True)),
    Index("ix_endpoints_tenant", "tenant_cif", "created_at"),
    Index("ix_endpoints_cifs", "cifs", postgresql_using="gin"),
)

# One event for one endpoint: written in the consumer's transaction, sent by the sender job under a lease.
deliveries = Table(
    "deliveries", metadata,
    Column("id", String(36), primary_key=True),
    Column("endpoint_id", String(36), ForeignKey("endpoints.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(120), nullable=False),
    Column("cif", String(16), nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("webhook_id", String(40), nullable=False),
    Column("payload", LargeBinary, nullable=False),  # the CloudEvents JSON, byte for byte what is signed and sent
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("retry_until", DateTime(timezone=True), nullable=False),
    Column("lease_until", DateTime(timezone=True)),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("last_latency_ms", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    UniqueConstraint("endpoint_id", "event_id", name="uq_deliveries_endpoint_event"),
    Index("ix_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
    Index("ix_deliveries_endpoint", "endpoint_id", "created_at"),
)

# The delivery log: one row per attempt.
attempts = Table(
    "attempts", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("delivery_id", String(36), ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("endpoint_id", String(36), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("status_code", Integer),
    Column("latency_ms", Integer, nullable=False),
    Column("error", Text),
    Column("response_excerpt", Text),
    Index("ix_attempts_delivery", "delivery_id", "id"),
    Index("ix_attempts_endpoint", "endpoint_id", "at"),
)
