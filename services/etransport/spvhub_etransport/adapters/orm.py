"""Tables of the etransport service (SQLAlchemy Core); the Alembic history in migrations/ follows this file."""
from __future__ import annotations

from spvhub_common.access import access_table
from spvhub_common.messaging import add_messaging_tables
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()
outbox, inbox = add_messaging_tables(metadata)
access_grants = access_table(metadata)

# Companies whose carrier view we poll, with their poll state (one row per CIF, kept after rights are lost so
# their history stays addressable).
companies = Table(
    "companies", metadata,
    Column("cif", String(16), primary_key=True),
    Column("status", String(24), nullable=False, server_default="active"),  # active | paused | no_rights | lost
    Column("status_reason", Text),
    Column("next_info_due", DateTime(timezone=True)),
    Column("next_lista_due", DateTime(timezone=True)),
    Column("last_info_poll_at", DateTime(timezone=True)),
    Column("last_info_fetched_at", DateTime(timezone=True)),
    Column("last_lista_poll_at", DateTime(timezone=True)),
    Column("last_success_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("last_error_at", DateTime(timezone=True)),
    Column("consecutive_errors", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The connections portfolio entitles to act for a CIF, best first (`rank`): one full snapshot per CIF from
# portfolio.entitlements-changed. Polling uses the first of them with e-Transport that is usable here, never any
# other connection, whatever rights its certificate has.
entitlements = Table(
    "entitlements", metadata,
    Column("cif", String(16), primary_key=True),
    Column("rank", Integer, primary_key=True),
    Column("connection_id", String(64), nullable=False),
    Column("holder_cif", String(16), nullable=False),
    Column("services", ARRAY(String(32)), nullable=False, server_default=text("'{}'")),  # normalized: etransport
    Column("may_file", Boolean, nullable=False, server_default=text("false")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The entitled e-Transport connections of each CIF (kept in step with `entitlements`) and whether each may be used
# now (auth's pauses, revocations and resumptions; ANAF's refusals).
company_connections = Table(
    "company_connections", metadata,
    Column("cif", String(16), primary_key=True),
    Column("connection_id", String(64), primary_key=True),
    Column("source", String(24), nullable=False),  # entitled (rights | authorized before entitlements)
    Column("status", String(24), nullable=False),  # active | paused | revoked | lost | no_service | no_rights
    Column("status_reason", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_company_connections_connection", "connection_id"),
)

transports = Table(
    "transports", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("carrier_cif", String(16), nullable=False),
    Column("uit", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("carrier_name", Text), Column("carrier_country", String(4)),
    Column("declarant_cif", String(32)), Column("declarant_name", Text), Column("declarant_ref", Text),
    Column("operation_type", String(4)),
    Column("transport_date", Date),
    Column("expires_on", Date),
    Column("expires_at", DateTime(timezone=True)),
    Column("expiry_source", String(8)),
    Column("partner_country", String(4)), Column("partner_code", String(32)), Column("partner_name", Text),
    Column("declared_vehicle", String(24)), Column("declared_trailer1", String(24)),
    Column("declared_trailer2", String(24)),
    Column("vehicle", String(24)), Column("trailer1", String(24)), Column("trailer2", String(24)),
    Column("plates", ARRAY(String(24)), nullable=False, server_default=text("'{}'")),
    Column("route_start", JSONB), Column("route_end", JSONB),
    Column("route_start_text", Text), Column("route_end_text", Text),
    Column("documents", Text), Column("anaf_id", String(32)), Column("goods", JSONB),
    Column("vehicle_changes", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("confirmation", JSONB),
    Column("confirmation_count", Integer, nullable=False, server_default="0"),
    Column("correction_count", Integer, nullable=False, server_default="0"),
    Column("deletion_count", Integer, nullable=False, server_default="0"),
    Column("reinstatement_count", Integer, nullable=False, server_default="0"),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("sources", ARRAY(String(8)), nullable=False, server_default=text("'{}'")),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_in_info_at", DateTime(timezone=True)),
    Column("deleted_at", DateTime(timezone=True)),
    Column("expired_at", DateTime(timezone=True)),
    Column("expiring_notified_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("carrier_cif", "uit", name="uq_transports_carrier_uit"),
    Index("ix_transports_uit", "uit"),
    Index("ix_transports_carrier_state", "carrier_cif", "state", "transport_date"),
    Index("ix_transports_declarant", "declarant_cif"),
    Index("ix_transports_active_expiry", "expires_at", postgresql_where=text("state = 'active'")),
    Index("ix_transports_plates", "plates", postgresql_using="gin"),
)

# Every observed change, never deleted: what ANAF said, when we saw it, and from which endpoint.
transport_history = Table(
    "transport_history", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("carrier_cif", String(16), nullable=False),
    Column("uit", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", String(24), nullable=False),
    Column("source", String(8), nullable=False),
    Column("changes", JSONB, nullable=False),
    Column("observed_at", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(["carrier_cif", "uit"], ["transports.carrier_cif", "transports.uit"],
                         name="fk_history_transport"),
    Index("ix_transport_history_transport", "carrier_cif", "uit", "id"),
)

# Ledger of emitted events: the unique key makes a second emission of the same change impossible.
transport_events = Table(
    "transport_events", metadata,
    Column("carrier_cif", String(16), primary_key=True),
    Column("uit", String(32), primary_key=True),
    Column("kind", String(24), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("emitted_at", DateTime(timezone=True), nullable=False),
)
