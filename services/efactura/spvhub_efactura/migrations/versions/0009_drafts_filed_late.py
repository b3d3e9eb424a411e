"""The filing clock beyond submissions: `submission_drafts` (invoices saved but not filed yet, on the clock from
their issue date) and `invoices.filed_late` (a sent invoice found in the inbox, filed after its deadline: the
filing moment is the message's data_creare)

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "submission_drafts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("cif", sa.String(16), nullable=False),
        sa.Column("xml_sha256", sa.String(64), nullable=False),
        sa.Column("xml_key", sa.Text, nullable=False),
        sa.Column("xml_size", sa.Integer, nullable=False),
        sa.Column("standard", sa.String(8), nullable=False),
        sa.Column("document_type", sa.String(20)),
        sa.Column("number", sa.Text),
        sa.Column("issue_date", sa.Date, nullable=False),
        sa.Column("seller_cif", sa.String(32)),
        sa.Column("buyer_cif", sa.String(32)),
        sa.Column("extern", sa.Boolean),  # NULL: as the document says when it is filed
        sa.Column("autofactura", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("b2c", sa.Boolean),
        sa.Column("warnings", JSONB),
        sa.Column("state", sa.String(16), nullable=False, server_default="draft"),
        sa.Column("created_by", sa.String(64)),
        sa.Column("submission_id", sa.String(64)),
        sa.Column("filed_by", sa.String(64)),
        sa.Column("filed_at", TS),
        sa.Column("deadline_warned_at", TS),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("cif", "xml_sha256", name="uq_submission_drafts_cif_xml"),
    )
    op.create_index("ix_submission_drafts_open", "submission_drafts", ["cif", "issue_date"],
                    postgresql_where=sa.text("state = 'draft'"))
    op.add_column("invoices", sa.Column("filed_late", sa.Boolean))


def downgrade() -> None:
    op.drop_column("invoices", "filed_late")
    op.drop_index("ix_submission_drafts_open", table_name="submission_drafts")
    op.drop_table("submission_drafts")
