"""inbox, e-mail outbox and delivery log, preferences, digest items, read models of users and companies

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


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False, server_default=""),
        sa.Column("locale", sa.String(8), nullable=False, server_default="ro"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "companies",
        sa.Column("cif", sa.String(16), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "user_settings",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("locale", sa.String(8)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "email_preferences",
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("email", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "kind"),
    )
    op.create_table(
        "company_preferences",
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("cif", sa.String(16), nullable=False),
        sa.Column("invoice_digest", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "cif"),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("source_event_id", sa.String(100), nullable=False),
        sa.Column("cif", sa.String(16)),
        sa.Column("params", postgresql.JSONB(), nullable=False),
        sa.Column("actionable", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("action_state", sa.String(32)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("read_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("source_event_id", "user_id", name="uq_notifications_event_user"),
    )
    op.create_index("ix_notifications_user_created", "notifications", ["user_id", "created_at"])
    op.create_index("ix_notifications_unread", "notifications", ["user_id"],
                    postgresql_where=sa.text("read_at IS NULL"))
    op.create_table(
        "email_outbox",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("source_event_id", sa.String(100), nullable=False),
        sa.Column("recipient", sa.String(400), nullable=False),
        sa.Column("user_id", sa.String(64)),
        sa.Column("to_address", sa.Text()),
        sa.Column("locale", sa.String(8)),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("cif", sa.String(16)),
        sa.Column("params", postgresql.JSONB(), nullable=False),
        sa.Column("notification_id", sa.String(36)),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text()),
        sa.Column("subject", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("source_event_id", "recipient", name="uq_email_outbox_event_recipient"),
    )
    op.create_index("ix_email_outbox_due", "email_outbox", ["next_attempt_at"],
                    postgresql_where=sa.text("status IN ('pending', 'sending')"))
    op.create_table(
        "delivery_log",
        sa.Column("id", sa.BigInteger(), autoincrement=True, primary_key=True),
        sa.Column("email_id", sa.String(36), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text()),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_delivery_log_email_id", "delivery_log", ["email_id"])
    op.create_table(
        "digest_items",
        sa.Column("source_event_id", sa.String(100), primary_key=True),
        sa.Column("cif", sa.String(16), nullable=False),
        sa.Column("params", postgresql.JSONB(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("digest_id", sa.String(36)),
    )
    op.create_index("ix_digest_items_pending", "digest_items", ["cif"], postgresql_where=sa.text("digest_id IS NULL"))


def downgrade() -> None:
    for t in ("digest_items", "delivery_log", "email_outbox", "notifications", "company_preferences",
              "email_preferences", "user_settings", "companies", "users"):
        op.drop_table(t)
