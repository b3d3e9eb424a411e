"""sync_companies.cnp_sealed: a person key's CNP sealed to it (from portfolio.entitlements-changed), unsealed only
to name the company to ANAF; NULL for a company identified by CIF

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sync_companies", sa.Column("cnp_sealed", sa.Text()))


def downgrade() -> None:
    op.drop_column("sync_companies", "cnp_sealed")
