"""submissions.deadline_warned_at: when `efactura.filing-deadline-approaching` was published for the submission, so
the scan tells each one once; a partial index keeps the scan to invoices not warned yet

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("submissions", sa.Column("deadline_warned_at", sa.DateTime(timezone=True)))
    op.create_index("ix_submissions_deadline_unwarned", "submissions", ["issue_date"],
                    postgresql_where=sa.text("kind = 'invoice' AND deadline_warned_at IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_submissions_deadline_unwarned", table_name="submissions")
    op.drop_column("submissions", "deadline_warned_at")
