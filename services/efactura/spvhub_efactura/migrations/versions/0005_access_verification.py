"""access_grants: verified and can_file (proof of control, filing permission)

Revision ID: 0005
Revises: 0004
"""
from spvhub_common.migration_ops import access_grants_verification_v2, drop_access_grants_verification_v2

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    access_grants_verification_v2()


def downgrade() -> None:
    drop_access_grants_verification_v2()
