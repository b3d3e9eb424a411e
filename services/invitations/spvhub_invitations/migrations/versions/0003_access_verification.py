"""access_grants: verified and can_file (proof of control, filing permission)

Revision ID: 0003
Revises: 0002
"""
from spvhub_common.migration_ops import access_grants_verification_v2, drop_access_grants_verification_v2

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    access_grants_verification_v2()


def downgrade() -> None:
    drop_access_grants_verification_v2()
