"""outbox, inbox and the access read model (with verified and can_file)

Revision ID: 0001
Revises:
"""
from spvhub_common.migration_ops import (
    access_grants_verification_v2,
    create_messaging_tables_v1,
    drop_access_grants_verification_v2,
    drop_messaging_tables_v1,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_messaging_tables_v1()
    access_grants_verification_v2()


def downgrade() -> None:
    drop_access_grants_verification_v2()
    drop_messaging_tables_v1()
