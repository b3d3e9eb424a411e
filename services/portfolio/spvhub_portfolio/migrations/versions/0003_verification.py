"""proof of control: verified memberships, users by e-mail, filing permission on collaborations, entitlements

Existing memberships of a company that has an ANAF connection whose certificate has SPV rights on the company
itself become verified (`migration`); every other membership becomes unverified. Published access is marked stale
(`verified` NULL) so the service publishes it again with the new fields.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from spvhub_common.migration_ops import access_grants_verification_v2, drop_access_grants_verification_v2

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    access_grants_verification_v2()
    op.add_column("memberships", sa.Column("verified_at", sa.DateTime(timezone=True)))
    op.add_column("memberships", sa.Column("verified_via", sa.String(16)))
    op.add_column("collaborations", sa.Column("may_file", sa.Boolean(), nullable=False,
                                              server_default=sa.text("false")))
    op.add_column("access_published", sa.Column("verified", sa.Boolean()))
    op.add_column("access_published", sa.Column("can_file", sa.Boolean()))
    op.create_table(
        "users",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ux_users_email", "users", [sa.text("lower(email)")], unique=True)
    op.create_table(
        "entitlements_published",
        sa.Column("cif", sa.String(16), primary_key=True),
        sa.Column("connections", postgresql.JSONB(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.execute("""
        UPDATE memberships m SET verified_at = now(), verified_via = 'migration'
        WHERE EXISTS (SELECT 1 FROM connections c JOIN connection_rights r ON r.connection_id = c.connection_id
                      WHERE c.holder_cif = m.cif AND r.cif = m.cif AND c.status <> 'revoked')
    """)


def downgrade() -> None:
    op.drop_table("entitlements_published")
    op.drop_index("ux_users_email", table_name="users")
    op.drop_table("users")
    op.drop_column("access_published", "can_file")
    op.drop_column("access_published", "verified")
    op.drop_column("collaborations", "may_file")
    op.drop_column("memberships", "verified_via")
    op.drop_column("memberships", "verified_at")
    drop_access_grants_verification_v2()
