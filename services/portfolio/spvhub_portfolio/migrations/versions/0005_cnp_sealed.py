"""companies.cnp_sealed: a natural person's CNP, sealed to the person key that is the company's id

NULL for a company identified by CIF, and for a person key whose CNP the platform has not been told yet (a company
met first in an SPV inventory).

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("companies", sa.Column("cnp_sealed", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("companies", "cnp_sealed")
