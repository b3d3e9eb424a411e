"""entitlements read model (who may act for a CIF, best first) replaces connection_rights

The sync no longer follows a certificate's rights: only the connections portfolio names as entitled for a CIF may
act for it. Until portfolio's first snapshot for a CIF arrives, that CIF is not synced (fail closed).

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "entitlements",
        sa.Column("cif", sa.String(16), primary_key=True),
        sa.Column("rank", sa.Integer(), primary_key=True),
        sa.Column("connection_id", sa.String(64), nullable=False),
        sa.Column("holder_cif", sa.String(16), nullable=False),
        sa.Column("services", postgresql.ARRAY(sa.String(32)), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("may_file", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.drop_index("ix_connection_rights_cif", table_name="connection_rights")
    op.drop_table("connection_rights")


def downgrade() -> None:
    op.create_table(
        "connection_rights",
        sa.Column("connection_id", sa.String(64), primary_key=True),
        sa.Column("cif", sa.String(16), primary_key=True),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_connection_rights_cif", "connection_rights", ["cif"])
    op.drop_table("entitlements")
