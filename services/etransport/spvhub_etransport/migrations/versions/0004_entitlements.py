"""entitlements read model (who may act for a CIF, best first); polling follows it, not a certificate's rights

The connections known from rights discovery are forgotten and every company stops until portfolio's snapshot of
its entitlements arrives (fail closed: no connection serves a company it is not entitled for).

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entitlements",
        sa.Column("cif", sa.String(16), primary_key=True),
        sa.Column("rank", sa.Integer(), primary_key=True),
        sa.Column("connection_id", sa.String(64), nullable=False),
        sa.Column("holder_cif", sa.String(16), nullable=False),
        sa.Column("services", postgresql.ARRAY(sa.String(32)), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("may_file", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.execute("DELETE FROM company_connections")
    op.execute("UPDATE companies SET status = 'stopped', status_reason = 'no_entitled_connection', "
               "updated_at = now()")


def downgrade() -> None:
    op.drop_table("entitlements")
