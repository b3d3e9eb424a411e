"""Tables of the invitations service (SQLAlchemy Core); the Alembic history in migrations/ follows this file."""
from __future__ import annotations

from spvhub_common.access import access_table
from spvhub_common.messaging import add_messaging_tables
from sqlalchemy import ARRAY, Boolean, Column, DateTime, Index, Integer, MetaData, String, Table, Text, func, text

metadata = MetaData()
outbox, inbox = add_messaging_tables(metadata)
access_grants = access_table(metadata)

# read model of portfolio's companies (names for e-mails and preview, the accounting-services flag)
companies = Table(
    "companies", metadata,
    Column("cif", String(16), primary_key=True),
    Column("name", Text, nullable=False),
    Column("address", Text, nullable=False, server_default=""),
    Column("trade_register_no", String(64), nullable=False, server_default=""),
    Column("vat_payer", Boolean, nullable=False, server_default=text("false")),
    Column("provides_accounting_services", Boolean, nullable=False, server_default=text("false")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # a natural person (`cif` is the person key): the CNP masked (1********0008) as portfolio's sealed value said;
    # the clear CNP is never stored here
    Column("cnp_masked", String(16)),
)

# read model of portfolio.rights-discovered: which connection (certificate) of a holder sees which CIFs
firm_connections = Table(
    "firm_connections", metadata,
    Column("connection_id", String(64), primary_key=True),
    Column("holder_cif", String(16), nullable=False, index=True),
    Column("services", ARRAY(String(32)), nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
firm_clients = Table(
    "firm_clients", metadata,
    Column("connection_id", String(64), primary_key=True),
    Column("client_cif", String(16), primary_key=True),
    Column("holder_cif", String(16), nullable=False),
    Column("discovered_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_firm_clients_holder", "holder_cif", "client_cif"),
)

invitations = Table(
    "invitations", metadata,
    Column("id", String(36), primary_key=True),
    Column("firm_cif", String(16), nullable=False),
    Column("client_cif", String(16), nullable=False),
    # the client's id as shown to the firm and the invited person: the CIF, a natural person's CNP masked; NULL when
    # only the person key is known
    Column("client_tax_id", String(16)),
    Column("name", Text, nullable=False),
    Column("email", Text, nullable=False),
    Column("phone", String(32), nullable=False),
    Column("locale", String(8), nullable=False, server_default="ro"),
    Column("status", String(16), nullable=False),
    Column("token_nonce", String(64), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("send_count", Integer, nullable=False, server_default="1"),
    Column("claimed_by", String(64)),
    Column("claimed_at", DateTime(timezone=True)),
    Column("answered_at", DateTime(timezone=True)),
    Column("expired_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoked_by", String(64)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_invitations_firm", "firm_cif", "created_at"),
    Index("ix_invitations_pending_expiry", "expires_at", postgresql_where=text("status = 'pending'")),
    Index("ix_invitations_claimed_by", "claimed_by"),
    # at most one open invitation per firm and client
    Index("uq_invitations_open", "firm_cif", "client_cif", unique=True,
          postgresql_where=text("status IN ('pending', 'claimed')")),
)
