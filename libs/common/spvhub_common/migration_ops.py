"""Alembic operations shared by every service's migrations.

Each function is a frozen step of history: it is never changed once released. A schema change of the
shared tables is a new function (`..._v2`) called from a new migration in every service.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


def create_messaging_tables_v1() -> None:
    """The outbox, the inbox and the access read model (`access_grants`), as of revision 0001."""
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger(), autoincrement=True, primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.Text(), nullable=False, server_default=""),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("headers", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("published_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_outbox_unpublished", "outbox", ["seq"], postgresql_where=sa.text("published_at IS NULL"))
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"])
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "access_grants",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("cif", sa.String(16), primary_key=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("via_firm_cif", sa.String(16)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def drop_messaging_tables_v1() -> None:
    op.drop_table("access_grants")
    op.drop_table("inbox")
    op.drop_table("outbox")


def access_grants_verification_v2() -> None:
    """access_grants gains `verified` and `can_file` (proof of control, filing permission)."""
    op.add_column("access_grants", sa.Column("verified", sa.Boolean(), nullable=False, server_default=sa.text("true")))
    op.add_column("access_grants", sa.Column("can_file", sa.Boolean(), nullable=False,
                                             server_default=sa.text("false")))


def drop_access_grants_verification_v2() -> None:
    op.drop_column("access_grants", "can_file")
    op.drop_column("access_grants", "verified")
