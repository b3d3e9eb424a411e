"""person_ids: a natural person's CNP sealed to its person key, so an authorization started with the key alone can
name the person to ANAF for the rights check

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "person_ids",
        sa.Column("person_key", sa.String(length=16), nullable=False),
        sa.Column("cnp_sealed", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("person_key"),
    )


def downgrade() -> None:
    op.drop_table("person_ids")
