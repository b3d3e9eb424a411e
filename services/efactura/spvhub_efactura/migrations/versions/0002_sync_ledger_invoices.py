"""sync state, rights read model, message ledger, invoices, quota ledger

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
        "connections",
        sa.Column("connection_id", sa.String(64), primary_key=True),
        sa.Column("holder_cif", sa.String(16)),
        sa.Column("status", sa.String(32), nullable=False, server_default="active"),
        sa.Column("status_reason", sa.Text()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "connection_rights",
        sa.Column("connection_id", sa.String(64), primary_key=True),
        sa.Column("cif", sa.String(16), primary_key=True),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_connection_rights_cif", "connection_rights", ["cif"])
    op.create_table(
        "sync_companies",
        sa.Column("cif", sa.String(16), primary_key=True),
        sa.Column("interval_seconds", sa.Integer()),
        sa.Column("watermark", TS),
        sa.Column("first_sync_started_at", TS),
        sa.Column("first_sync_completed_at", TS),
        sa.Column("next_sync_at", TS),
        sa.Column("sync_requested", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("last_started_at", TS),
        sa.Column("last_success_at", TS),
        sa.Column("last_error", sa.Text()),
        sa.Column("last_error_at", TS),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_reconciled_at", TS),
        sa.Column("last_reconcile_complete", sa.Boolean()),
        sa.Column("blocked_until", TS),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", TS),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "messages",
        sa.Column("cif", sa.String(16), primary_key=True),
        sa.Column("message_id", sa.String(32), primary_key=True),
        sa.Column("tip", sa.String(80), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("upload_index", sa.String(32)),
        sa.Column("detalii", sa.Text()),
        sa.Column("listed_at", TS, nullable=False),
        sa.Column("purge_at", TS, nullable=False),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="listed"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS),
        sa.Column("last_attempt_at", TS),
        sa.Column("last_error", sa.Text()),
        sa.Column("lost_reason", sa.Text()),
        sa.Column("archived_at", TS),
        sa.Column("zip_key", sa.Text()),
        sa.Column("zip_sha256", sa.String(64)),
        sa.Column("zip_size", sa.Integer()),
        sa.Column("parse_status", sa.String(20)),
        sa.Column("parse_error", sa.Text()),
        sa.Column("needs_reprocess", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("signature_status", sa.String(16)),
        sa.Column("signature_detail", sa.Text()),
        sa.Column("signer_subject", sa.Text()),
        sa.Column("signer_sha256", sa.String(64)),
        sa.Column("expiring_notified_at", TS),
        sa.Column("submission_id", sa.String(64)),
    )
    op.create_index("ix_messages_pending", "messages", ["cif", "purge_at"],
                    postgresql_where=sa.text("state IN ('listed','failed')"))
    op.create_index("ix_messages_upload_index", "messages", ["upload_index"])
    op.create_index("ix_messages_reprocess", "messages", ["cif"], postgresql_where=sa.text("needs_reprocess"))
    op.create_table(
        "invoices",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("cif", sa.String(16), nullable=False),
        sa.Column("message_id", sa.String(32), nullable=False),
        sa.Column("direction", sa.String(10), nullable=False),
        sa.Column("document_type", sa.String(20), nullable=False),
        sa.Column("message_type", sa.String(80)),
        sa.Column("type_code", sa.String(8)),
        sa.Column("number", sa.Text()),
        sa.Column("issue_date", sa.Date()),
        sa.Column("due_date", sa.Date()),
        sa.Column("currency", sa.String(3)),
        sa.Column("tax_currency", sa.String(3)),
        sa.Column("seller_cif", sa.String(32)),
        sa.Column("seller_name", sa.Text()),
        sa.Column("buyer_cif", sa.String(32)),
        sa.Column("buyer_name", sa.Text()),
        sa.Column("partner_cif", sa.String(32)),
        sa.Column("partner_name", sa.Text()),
        sa.Column("self_billing", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("net_amount", sa.Numeric(19, 2)),
        sa.Column("vat_amount", sa.Numeric(19, 2)),
        sa.Column("total_amount", sa.Numeric(19, 2)),
        sa.Column("payable_amount", sa.Numeric(19, 2)),
        sa.Column("vat_breakdown", postgresql.JSONB()),
        sa.Column("details", postgresql.JSONB()),
        sa.Column("preceding_number", sa.Text()),
        sa.Column("upload_index", sa.String(32)),
        sa.Column("listed_at", TS, nullable=False),
        sa.Column("zip_key", sa.Text(), nullable=False),
        sa.Column("xml_key", sa.Text()),
        sa.Column("signature_status", sa.String(16)),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("cif", "message_id", name="uq_invoices_cif_message"),
    )
    op.create_index("ix_invoices_cif_listed", "invoices", ["cif", sa.text("listed_at DESC"), sa.text("id DESC")])
    op.create_index("ix_invoices_listed", "invoices", [sa.text("listed_at DESC"), sa.text("id DESC")])
    op.create_index("ix_invoices_cif_partner", "invoices", ["cif", "partner_cif"])
    op.create_index("ix_invoices_cif_number", "invoices", ["cif", "number"])
    op.create_index("ix_invoices_cif_issue", "invoices", ["cif", "issue_date"])
    op.create_table(
        "quota_ledger",
        sa.Column("kind", sa.String(64), primary_key=True),
        sa.Column("scope_key", sa.String(64), primary_key=True),
        sa.Column("resets_at", TS, primary_key=True),
        sa.Column("text", sa.Text()),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    for t in ("quota_ledger", "invoices", "messages", "sync_companies", "connection_rights", "connections"):
        op.drop_table(t)
