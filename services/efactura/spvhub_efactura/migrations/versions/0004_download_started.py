"""messages.download_started_at: set when a download of the message is about to start, so only messages that may
already have their ZIP in the archive (a run died between the blob and the row) pay for a blob lookup first

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("download_started_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("messages", "download_started_at")
