"""issue 10: outgoing submissions; invoices.submission_id

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("invoices", sa.Column("submission_id", sa.String(64)))
    op.create_index("ix_invoices_cif_upload_index", "invoices", ["cif", "upload_index"])
    op.create_table(
        "submissions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("cif", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("key_source", sa.String(10), nullable=False),
        sa.Column("xml_sha256", sa.String(64), nullable=False),
        sa.Column("xml_key", sa.Text(), nullable=False),
        sa.Column("xml_size", sa.Integer(), nullable=False),
        sa.Column("standard", sa.String(8), nullable=False),
        sa.Column("document_type", sa.String(20)),
        sa.Column("extern", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("autofactura", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("b2c", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("validate_first", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("number", sa.Text()),
        sa.Column("issue_date", sa.Date()),
        sa.Column("seller_cif", sa.String(32)),
        sa.Column("buyer_cif", sa.String(32)),
        sa.Column("invoice_id", sa.BigInteger()),
        sa.Column("ref_upload_index", sa.String(32)),
        sa.Column("submitted_by", sa.String(64)),
        sa.Column("state", sa.String(16), nullable=False, server_default="received"),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", TS),
        sa.Column("next_attempt_at", TS),
        sa.Column("upload_attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("upload_started_at", TS),
        sa.Column("uploaded_at", TS),
        sa.Column("anaf_index", sa.String(32)),
        sa.Column("upload_response_key", sa.Text()),
        sa.Column("anaf_state", sa.String(64)),
        sa.Column("id_descarcare", sa.String(32)),
        sa.Column("state_checks", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_check_at", TS),
        sa.Column("last_checked_at", TS),
        sa.Column("validation", postgresql.JSONB()),
        sa.Column("error_stage", sa.String(16)),
        sa.Column("errors", postgresql.JSONB()),
        sa.Column("error_report_key", sa.Text()),
        sa.Column("error_report_invoice_id", sa.BigInteger()),
        sa.Column("sent_invoice_id", sa.BigInteger()),
        sa.Column("last_error", sa.Text()),
        sa.Column("reconcile_note", sa.Text()),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", TS),
        sa.UniqueConstraint("cif", "idempotency_key", name="uq_submissions_cif_key"),
    )
    op.create_index("ix_submissions_cif_created", "submissions", ["cif", sa.text("created_at DESC")])
    op.create_index("ix_submissions_cif_index", "submissions", ["cif", "anaf_index"])
    op.create_index("ix_submissions_active", "submissions", ["state"],
                    postgresql_where=sa.text("state IN ('received','uploading','processing','unknown') "
                                             "OR (state = 'accepted' AND sent_invoice_id IS NULL)"))


def downgrade() -> None:
    op.drop_table("submissions")
    op.drop_index("ix_invoices_cif_upload_index", table_name="invoices")
    op.drop_column("invoices", "submission_id")
