"""Tables of the portfolio service (SQLAlchemy Core); the Alembic history in migrations/ follows this file."""
from __future__ import annotations

from spvhub_common.access import access_table
from spvhub_common.messaging import add_messaging_tables
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
outbox, inbox = add_messaging_tables(metadata)
access_grants = access_table(metadata)

# Cache of ANAF's public VAT registry (v9), refreshed daily; also covers discovered CIFs that are
# not (yet) companies on the platform.
registry_entries = Table(
    "registry_entries", metadata,
    Column("cif", String(16), primary_key=True),
    Column("found", Boolean, nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    Column("address", Text, nullable=False, server_default=""),
    Column("trade_register_no", String(64), nullable=False, server_default=""),
    Column("vat_payer", Boolean, nullable=False, server_default=text("false")),
    Column("efactura_registered", Boolean, nullable=False, server_default=text("false")),
    Column("raw", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("fetched_at", DateTime(timezone=True), nullable=False),
)

companies = Table(
    "companies", metadata,
    Column("cif", String(16), primary_key=True),
    Column("name", Text, nullable=False, server_default=""),
    Column("address", Text, nullable=False, server_default=""),
    Column("trade_register_no", String(64), nullable=False, server_default=""),
    Column("vat_payer", Boolean, nullable=False, server_default=text("false")),
    Column("efactura_registered", Boolean, nullable=False, server_default=text("false")),
    Column("provides_accounting_services", Boolean, nullable=False, server_default=text("false")),
    Column("registry_checked_at", DateTime(timezone=True)),
    Column("registered_by", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # A natural person's company (`cif` is the person key): the CNP sealed to that key (spvhub_common.pii), never
    # the clear CNP. NULL for a CIF, and for a person key met in an SPV inventory before anyone registered it.
    Column("cnp_sealed", Text),
)

memberships = Table(
    "memberships", metadata,
    Column("cif", String(16), ForeignKey("companies.cif"), primary_key=True),
    Column("user_id", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Proof of control: NULL while the member only registered or claimed the company (they then see registry data
    # and nothing from ANAF); set when verified by an ANAF authorization with rights, a grant by a verified owner or
    # administrator, or an invitation from a firm whose certificate covers the company.
    Column("verified_at", DateTime(timezone=True)),
    Column("verified_via", String(16)),  # authorization | grant | invitation | migration
    Index("ix_memberships_user", "user_id"),
)

# Platform accounts as auth announces them (auth.user-registered): a member is added by e-mail, never by a free id.
users = Table(
    "users", metadata,
    Column("user_id", String(64), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    # auth's `email_verified`: no company is verified for a person whose e-mail is not (the proof waits below)
    Column("email_verified", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ux_users_email", func.lower(users.c.email), unique=True)

# A proof of control (authorization, invitation) that came before the person's e-mail was verified: applied when
# auth announces the verification, so an authorization done first is not lost.
pending_verifications = Table(
    "pending_verifications", metadata,
    Column("user_id", String(64), primary_key=True),
    Column("cif", String(16), primary_key=True),
    Column("via", String(16), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

# ANAF connections as auth announces them (no token here: tokens stay in auth).
connections = Table(
    "connections", metadata,
    Column("connection_id", String(64), primary_key=True),
    Column("holder_cif", String(16), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("holder_name", Text, nullable=False, server_default=""),
    Column("certificate_serial", String(128), nullable=False, server_default=""),
    Column("services", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("status", String(32), nullable=False),
    Column("status_reason", Text, nullable=False, server_default=""),
    Column("authorized_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_discovery_at", DateTime(timezone=True)),
    Column("last_discovery_mode", String(16)),
    Column("last_discovery_complete", Boolean),
    Column("last_discovery_error", Text),
    Column("last_discovery_count", Integer),
    Index("ix_connections_holder", "holder_cif"),
)

# Which connection can act for which CIF (discovered SPV rights of the connection's certificate holder).
connection_rights = Table(
    "connection_rights", metadata,
    Column("connection_id", String(64), ForeignKey("connections.connection_id"), primary_key=True),
    Column("cif", String(16), primary_key=True),
    Column("discovered_at", DateTime(timezone=True), nullable=False),
    Column("confirmed_at", DateTime(timezone=True), nullable=False),
    Index("ix_connection_rights_cif", "cif"),
)

# CIFs a firm asks discovery to probe (CSV upload); companies known to the platform are probed as well.
candidates = Table(
    "candidates", metadata,
    Column("firm_cif", String(16), primary_key=True),
    Column("cif", String(16), primary_key=True),
    Column("added_by", String(64)),
    Column("added_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

collaborations = Table(
    "collaborations", metadata,
    Column("id", String(36), primary_key=True),
    Column("firm_cif", String(16), nullable=False),
    Column("client_cif", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("invitation_id", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("activated_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("ended_by", String(64)),
    Column("end_reason", Text),
    # The client allowed the firm to file invoices and send messages at ANAF in its name.
    Column("may_file", Boolean, nullable=False, server_default=text("false")),
    # at most one open (pending or active) collaboration per firm and client
    Index("ux_collaborations_open", "firm_cif", "client_cif", unique=True,
          postgresql_where=text("status <> 'ended'")),
    Index("ix_collaborations_client", "client_cif"),
)

# Invitations the firm sent (from invitations.invitation-sent), to mark discovered companies as invited.
invitations_seen = Table(
    "invitations_seen", metadata,
    Column("invitation_id", String(64), primary_key=True),
    Column("firm_cif", String(16), nullable=False),
    Column("client_cif", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # sent | claimed | accepted | declined | expired
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_invitations_seen_firm", "firm_cif", "client_cif"),
)

# What portfolio last told the platform through portfolio.access-changed, per (user, CIF): the diff base
# that makes every grant and revoke explicit and idempotent.
access_published = Table(
    "access_published", metadata,
    Column("user_id", String(64), primary_key=True),
    Column("cif", String(16), primary_key=True),
    Column("role", String(32), nullable=False),
    Column("via_firm_cif", String(16)),
    Column("verified", Boolean),  # NULL: published before verification existed, to be published again
    Column("can_file", Boolean),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_access_published_cif", "cif"),
)

# The entitled connections portfolio last published per CIF (portfolio.entitlements-changed), as the diff base.
entitlements_published = Table(
    "entitlements_published", metadata,
    Column("cif", String(16), primary_key=True),
    Column("connections", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
