"""users.email_verified and the proofs of control waiting for it

People known before e-mail verification existed keep their address counted as verified (server default true).

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
    op.add_column("users", sa.Column("email_verified", sa.Boolean(), nullable=False, server_default=sa.text("true")))
    op.create_table(
        "pending_verifications",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("cif", sa.String(length=16), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "cif"),
    )


def downgrade() -> None:
    op.drop_table("pending_verifications")
    op.drop_column("users", "email_verified")
