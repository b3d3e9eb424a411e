"""submissions.route_reason: why a submission was filed through `upload` or `uploadb2c` and with or without
`extern=DA`, as read from its document (buyer identified by CNP, 13 zeros, no tax id; abroad with or without a
Romanian VAT id; self-billing); NULL for buyer messages and the submissions filed before it was recorded

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("submissions", sa.Column("route_reason", sa.String(32)))


def downgrade() -> None:
    op.drop_column("submissions", "route_reason")
