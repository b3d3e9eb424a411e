"""Tables of the notifier service (SQLAlchemy Core); the Alembic history in migrations/ follows this file.

Idempotent delivery per (event, channel, recipient): `notifications` (channel inbox) is unique on
(source_event_id, user_id); `email_outbox` (channel e-mail) is unique on (source_event_id, recipient).
"""
from __future__ import annotations

from spvhub_common.access import access_table
from spvhub_common.messaging import add_messaging_tables
from sqlalchemy import (
                        BigInteger,
                        Boolean,
                        Column,
                        DateTime,
                        Index,
                        Integer,
                        MetaData,
                        PrimaryKeyConstraint,
                        String,
                        Table,
                        Text,
                        UniqueConstraint,
                        func,
                        text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
outbox, inbox = add_messaging_tables(metadata)
access_grants = access_table(metadata)

# read models
users = Table(
    "users", metadata,
    Column("user_id", String(64), primary_key=True),
    Column("email", Text, nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    Column("locale", String(8), nullable=False, server_default="ro"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
companies = Table(
    "companies", metadata,
    Column("cif", String(16), primary_key=True),
    Column("name", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# preferences (`user_settings.locale` is no longer read: the user's one language is auth's profile locale, kept in
# `users`; the table stays as the migrations made it)
user_settings = Table(
    "user_settings", metadata,
    Column("user_id", String(64), primary_key=True),
    Column("locale", String(8)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
email_preferences = Table(
    "email_preferences", metadata,
    Column("user_id", String(64), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("email", Boolean, nullable=False),
    PrimaryKeyConstraint("user_id", "kind"),
)
company_preferences = Table(
    "company_preferences", metadata,
    Column("user_id", String(64), nullable=False),
    Column("cif", String(16), nullable=False),
    Column("invoice_digest", Boolean, nullable=False),
    PrimaryKeyConstraint("user_id", "cif"),
)

# the in-app inbox
notifications = Table(
    "notifications", metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("source_event_id", String(100), nullable=False),
    Column("cif", String(16)),
    Column("params", JSONB, nullable=False),
    Column("actionable", Boolean, nullable=False, server_default=text("false")),
    Column("action_state", String(32)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("read_at", DateTime(timezone=True)),
    UniqueConstraint("source_event_id", "user_id", name="uq_notifications_event_user"),
    Index("ix_notifications_user_created", "user_id", "created_at"),
    Index("ix_notifications_unread", "user_id", postgresql_where=text("read_at IS NULL")),
)

# e-mail: outbox rows sent by the sender job, each attempt in the delivery log
email_outbox = Table(
    "email_outbox", metadata,
    Column("id", String(36), primary_key=True),
    Column("source_event_id", String(100), nullable=False),
    Column("recipient", String(400), nullable=False),  # "user:<id>" or "email:<address>"
    Column("user_id", String(64)),
    Column("to_address", Text),
    Column("locale", String(8)),
    Column("kind", String(64), nullable=False),
    Column("cif", String(16)),
    Column("params", JSONB, nullable=False),
    Column("notification_id", String(36)),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("lease_until", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("subject", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True)),
    UniqueConstraint("source_event_id", "recipient", name="uq_email_outbox_event_recipient"),
    Index("ix_email_outbox_due", "next_attempt_at", postgresql_where=text("status IN ('pending', 'sending')")),
)
delivery_log = Table(
    "delivery_log", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("email_id", String(36), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("outcome", String(16), nullable=False),  # sent | retry | failed | cancelled
    Column("detail", Text),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# invoices waiting for the next digest of their company
digest_items = Table(
    "digest_items", metadata,
    Column("source_event_id", String(100), primary_key=True),
    Column("cif", String(16), nullable=False),
    Column("params", JSONB, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("digest_id", String(36)),
    Index("ix_digest_items_pending", "cif", postgresql_where=text("digest_id IS NULL")),
)
