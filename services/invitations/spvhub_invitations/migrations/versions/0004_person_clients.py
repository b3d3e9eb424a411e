"""A natural person as an invitation's client: the CNP as anyone but the person's own members is shown it (masked,
`1********0008`), on the company read model and on the invitation. The clear CNP is stored nowhere here.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("companies", sa.Column("cnp_masked", sa.String(16), nullable=True))
    op.add_column("invitations", sa.Column("client_tax_id", sa.String(16), nullable=True))


def downgrade() -> None:
    op.drop_column("invitations", "client_tax_id")
    op.drop_column("companies", "cnp_masked")
