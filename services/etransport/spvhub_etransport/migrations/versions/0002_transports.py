"""companies, connections, transports, their history and the event ledger

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "companies",
        sa.Column("cif", sa.String(16), primary_key=True),
        sa.Column("status", sa.String(24), nullable=False, server_default="active"),
        sa.Column("status_reason", sa.Text()),
        sa.Column("next_info_due", TS), sa.Column("next_lista_due", TS),
        sa.Column("last_info_poll_at", TS), sa.Column("last_info_fetched_at", TS),
        sa.Column("last_lista_poll_at", TS), sa.Column("last_success_at", TS),
        sa.Column("last_error", sa.Text()), sa.Column("last_error_at", TS),
        sa.Column("consecutive_errors", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "company_connections",
        sa.Column("cif", sa.String(16), primary_key=True),
        sa.Column("connection_id", sa.String(64), primary_key=True),
        sa.Column("source", sa.String(24), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("status_reason", sa.Text()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_company_connections_connection", "company_connections", ["connection_id"])
    op.create_table(
        "transports",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("carrier_cif", sa.String(16), nullable=False),
        sa.Column("uit", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("carrier_name", sa.Text()), sa.Column("carrier_country", sa.String(4)),
        sa.Column("declarant_cif", sa.String(32)), sa.Column("declarant_name", sa.Text()),
        sa.Column("declarant_ref", sa.Text()),
        sa.Column("operation_type", sa.String(4)),
        sa.Column("transport_date", sa.Date()),
        sa.Column("expires_on", sa.Date()),
        sa.Column("expires_at", TS),
        sa.Column("expiry_source", sa.String(8)),
        sa.Column("partner_country", sa.String(4)), sa.Column("partner_code", sa.String(32)),
        sa.Column("partner_name", sa.Text()),
        sa.Column("declared_vehicle", sa.String(24)), sa.Column("declared_trailer1", sa.String(24)),
        sa.Column("declared_trailer2", sa.String(24)),
        sa.Column("vehicle", sa.String(24)), sa.Column("trailer1", sa.String(24)), sa.Column("trailer2", sa.String(24)),
        sa.Column("plates", postgresql.ARRAY(sa.String(24)), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("route_start", postgresql.JSONB()), sa.Column("route_end", postgresql.JSONB()),
        sa.Column("route_start_text", sa.Text()), sa.Column("route_end_text", sa.Text()),
        sa.Column("documents", sa.Text()), sa.Column("anaf_id", sa.String(32)), sa.Column("goods", postgresql.JSONB()),
        sa.Column("vehicle_changes", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("confirmation", postgresql.JSONB()),
        sa.Column("confirmation_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("correction_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("deletion_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("reinstatement_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("sources", postgresql.ARRAY(sa.String(8)), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("last_seen_in_info_at", TS),
        sa.Column("deleted_at", TS), sa.Column("expired_at", TS), sa.Column("expiring_notified_at", TS),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("carrier_cif", "uit", name="uq_transports_carrier_uit"),
    )
    op.create_index("ix_transports_uit", "transports", ["uit"])
    op.create_index("ix_transports_carrier_state", "transports", ["carrier_cif", "state", "transport_date"])
    op.create_index("ix_transports_declarant", "transports", ["declarant_cif"])
    op.create_index("ix_transports_active_expiry", "transports", ["expires_at"],
                    postgresql_where=sa.text("state = 'active'"))
    op.create_index("ix_transports_plates", "transports", ["plates"], postgresql_using="gin")
    op.create_table(
        "transport_history",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("carrier_cif", sa.String(16), nullable=False),
        sa.Column("uit", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("changes", postgresql.JSONB(), nullable=False),
        sa.Column("observed_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["carrier_cif", "uit"], ["transports.carrier_cif", "transports.uit"],
                                name="fk_history_transport"),
    )
    op.create_index("ix_transport_history_transport", "transport_history", ["carrier_cif", "uit", "id"])
    op.create_table(
        "transport_events",
        sa.Column("carrier_cif", sa.String(16), primary_key=True),
        sa.Column("uit", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(24), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("emitted_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("transport_events")
    op.drop_table("transport_history")
    op.drop_table("transports")
    op.drop_table("company_connections")
    op.drop_table("companies")
