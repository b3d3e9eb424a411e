"""invitations, and the read models of companies and discovered rights

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "companies",
        sa.Column("cif", sa.String(16), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False, server_default=""),
        sa.Column("trade_register_no", sa.String(64), nullable=False, server_default=""),
        sa.Column("vat_payer", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("provides_accounting_services", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "firm_connections",
        sa.Column("connection_id", sa.String(64), primary_key=True),
        sa.Column("holder_cif", sa.String(16), nullable=False),
        sa.Column("services", sa.ARRAY(sa.String(32)), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_firm_connections_holder_cif", "firm_connections", ["holder_cif"])
    op.create_table(
        "firm_clients",
        sa.Column("connection_id", sa.String(64), primary_key=True),
        sa.Column("client_cif", sa.String(16), primary_key=True),
        sa.Column("holder_cif", sa.String(16), nullable=False),
        sa.Column("discovered_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_firm_clients_holder", "firm_clients", ["holder_cif", "client_cif"])
    op.create_table(
        "invitations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("firm_cif", sa.String(16), nullable=False),
        sa.Column("client_cif", sa.String(16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("locale", sa.String(8), nullable=False, server_default="ro"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("token_nonce", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("send_count", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("claimed_at", sa.DateTime(timezone=True)),
        sa.Column("answered_at", sa.DateTime(timezone=True)),
        sa.Column("expired_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_by", sa.String(64)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_invitations_firm", "invitations", ["firm_cif", "created_at"])
    op.create_index("ix_invitations_pending_expiry", "invitations", ["expires_at"],
                    postgresql_where=sa.text("status = 'pending'"))
    op.create_index("ix_invitations_claimed_by", "invitations", ["claimed_by"])
    op.create_index("uq_invitations_open", "invitations", ["firm_cif", "client_cif"], unique=True,
                    postgresql_where=sa.text("status IN ('pending', 'claimed')"))


def downgrade() -> None:
    op.drop_table("invitations")
    op.drop_table("firm_clients")
    op.drop_table("firm_connections")
    op.drop_table("companies")
