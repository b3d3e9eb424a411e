"""Both ANAF signature shapes and nothing stuck: the ledger records the signature's shape, the signer's serial and
whether it is trusted (`valid_untrusted_signer` needs a wider status); `problem` on the ledger and the invoice row
says why an archived document is flagged (fields it holds that no column can store are left empty and named)

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("messages", "signature_status", type_=sa.String(32), existing_type=sa.String(16))
    op.alter_column("invoices", "signature_status", type_=sa.String(32), existing_type=sa.String(16))
    op.add_column("messages", sa.Column("signature_shape", sa.String(16)))
    op.add_column("messages", sa.Column("signer_serial", sa.String(64)))
    op.add_column("messages", sa.Column("signer_trusted", sa.Boolean()))
    op.add_column("messages", sa.Column("problem", sa.Text()))
    op.add_column("invoices", sa.Column("problem", sa.Text()))
    # what was flagged before: unreadable or hostile documents, and signatures that did not verify
    op.execute("UPDATE messages SET problem = parse_status || ': ' || coalesce(parse_error, '') "
               "WHERE state = 'archived' AND parse_status IS DISTINCT FROM 'ok' AND parse_status IS NOT NULL")
    op.execute("UPDATE messages SET problem = 'signature_' || signature_status || ': ' || "
               "coalesce(signature_detail, '') WHERE state = 'archived' AND problem IS NULL "
               "AND signature_status IS NOT NULL AND signature_status <> 'valid'")
    op.create_index("ix_messages_flagged", "messages", ["cif", sa.text("archived_at DESC")],
                    postgresql_where=sa.text("problem IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_messages_flagged", table_name="messages")
    op.drop_column("invoices", "problem")
    for name in ("problem", "signer_trusted", "signer_serial", "signature_shape"):
        op.drop_column("messages", name)
    op.alter_column("invoices", "signature_status", type_=sa.String(16), existing_type=sa.String(32))
    op.alter_column("messages", "signature_status", type_=sa.String(16), existing_type=sa.String(32))
