"""Tables of the efactura service (SQLAlchemy Core); the Alembic history in migrations/ follows this file."""
from __future__ import annotations

from spvhub_common.access import access_table
from spvhub_common.messaging import add_messaging_tables
from sqlalchemy import (
                        BigInteger,
                        Boolean,
                        Column,
                        Date,
                        DateTime,
                        Index,
                        Integer,
                        MetaData,
                        Numeric,
                        String,
                        Table,
                        Text,
                        UniqueConstraint,
                        func,
                        text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()
outbox, inbox = add_messaging_tables(metadata)
access_grants = access_table(metadata)

# Read model of auth's connections (status only; tokens stay in auth).
connections = Table(
    "connections", metadata,
    Column("connection_id", String(64), primary_key=True),
    Column("holder_cif", String(16)),
    Column("status", String(32), nullable=False, server_default="active"),  # active | paused | revoked
    Column("status_reason", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Read model of portfolio's entitlements: the connections that may act for a CIF, best first (`rank`), one full
# snapshot per CIF from portfolio.entitlements-changed. The sync and filing use the first of them that is active
# here (and, to file, may file), never any other connection, whatever rights its certificate has.
entitlements = Table(
    "entitlements", metadata,
    Column("cif", String(16), primary_key=True),
    Column("rank", Integer, primary_key=True),
    Column("connection_id", String(64), nullable=False),
    Column("holder_cif", String(16), nullable=False),
    Column("services", ARRAY(String(32)), nullable=False, server_default=text("'{}'")),  # normalized: efactura
    Column("may_file", Boolean, nullable=False, server_default=text("false")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Per-company sync state, watermark and health.
companies = Table(
    "sync_companies", metadata,
    Column("cif", String(16), primary_key=True),
    Column("interval_seconds", Integer),  # NULL: the service default
    Column("watermark", DateTime(timezone=True)),  # end of the last fully listed window
    Column("first_sync_started_at", DateTime(timezone=True)),
    Column("first_sync_completed_at", DateTime(timezone=True)),
    Column("next_sync_at", DateTime(timezone=True)),
    Column("sync_requested", Boolean, nullable=False, server_default=text("false")),
    Column("last_started_at", DateTime(timezone=True)),
    Column("last_success_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("last_error_at", DateTime(timezone=True)),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("last_reconciled_at", DateTime(timezone=True)),
    Column("last_reconcile_complete", Boolean),
    Column("blocked_until", DateTime(timezone=True)),  # list quota exhausted until
    Column("lease_owner", String(64)),
    Column("lease_until", DateTime(timezone=True)),  # database time
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # A person key's CNP sealed to it (spvhub_common.pii), from portfolio's entitlements: unsealed only to name the
    # company to ANAF (`cif=`); NULL for a CIF (migration 0010)
    Column("cnp_sealed", Text),
)

# The message ledger: every id ANAF ever listed for a CIF, and what became of it.
messages = Table(
    "messages", metadata,
    Column("cif", String(16), primary_key=True),
    Column("message_id", String(32), primary_key=True),
    Column("tip", String(80), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("upload_index", String(32)),
    Column("detalii", Text),
    Column("listed_at", DateTime(timezone=True), nullable=False),  # ANAF data_creare
    Column("purge_at", DateTime(timezone=True), nullable=False),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False, server_default="listed"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("lost_reason", Text),
    Column("archived_at", DateTime(timezone=True)),
    Column("zip_key", Text),
    Column("zip_sha256", String(64)),
    Column("zip_size", Integer),
    Column("parse_status", String(20)),  # ok | unparseable | hostile
    Column("parse_error", Text),
    Column("needs_reprocess", Boolean, nullable=False, server_default=text("false")),
    Column("signature_status", String(32)),  # valid | valid_untrusted_signer | invalid | missing | error
    Column("signature_detail", Text),
    Column("signer_subject", Text),
    Column("signer_sha256", String(64)),
    Column("signature_shape", String(16)),  # detached (ANAF production) | enveloped (ANAF test)
    Column("signer_serial", String(64)),  # hex
    Column("signer_trusted", Boolean),
    Column("problem", Text),  # why the archived document is flagged (parse, signature, fields not stored); NULL: none
    Column("expiring_notified_at", DateTime(timezone=True)),
    Column("submission_id", String(64)),  # the outgoing submission this message answers
    Column("download_started_at", DateTime(timezone=True)),  # a download began: its ZIP may be archived already
    Index("ix_messages_pending", "cif", "purge_at", postgresql_where=text("state IN ('listed','failed')")),
    Index("ix_messages_upload_index", "upload_index"),
    Index("ix_messages_reprocess", "cif", postgresql_where=text("needs_reprocess")),
    Index("ix_messages_flagged", "cif", text("archived_at DESC"), postgresql_where=text("problem IS NOT NULL")),
)

# Parsed documents (invoices, credit notes, error reports, buyer messages), one per archived message.
invoices = Table(
    "invoices", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("cif", String(16), nullable=False),
    Column("message_id", String(32), nullable=False),
    Column("direction", String(10), nullable=False),  # received | sent
    Column("document_type", String(20), nullable=False),  # invoice | credit_note | error_report | buyer_message
    Column("message_type", String(80)),  # ANAF tip
    Column("type_code", String(8)),
    Column("number", Text),
    Column("issue_date", Date),
    Column("due_date", Date),
    Column("currency", String(3)),
    Column("tax_currency", String(3)),
    Column("seller_cif", String(32)),
    Column("seller_name", Text),
    Column("buyer_cif", String(32)),
    Column("buyer_name", Text),
    Column("partner_cif", String(32)),
    Column("partner_name", Text),
    Column("self_billing", Boolean, nullable=False, server_default=text("false")),
    Column("net_amount", Numeric(19, 2)),
    Column("vat_amount", Numeric(19, 2)),
    Column("total_amount", Numeric(19, 2)),  # TaxInclusiveAmount
    Column("payable_amount", Numeric(19, 2)),
    Column("vat_breakdown", JSONB),
    Column("details", JSONB),  # remaining parsed fields (parties, notes, error texts...)
    Column("preceding_number", Text),
    Column("upload_index", String(32)),
    Column("listed_at", DateTime(timezone=True), nullable=False),
    Column("zip_key", Text, nullable=False),
    Column("xml_key", Text),
    Column("signature_status", String(32)),
    Column("problem", Text),  # fields present in the document but not stored (left empty), and why
    # a sent invoice accepted by ANAF (its message's data_creare) after its legal filing deadline; NULL: not a
    # sent invoice, or archived before this was computed
    Column("filed_late", Boolean),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("cif", "message_id", name="uq_invoices_cif_message"),
    Index("ix_invoices_cif_listed", "cif", text("listed_at DESC"), text("id DESC")),
    Index("ix_invoices_listed", text("listed_at DESC"), text("id DESC")),
    Index("ix_invoices_cif_partner", "cif", "partner_cif"),
    Index("ix_invoices_cif_number", "cif", "number"),
    Index("ix_invoices_cif_issue", "cif", "issue_date"),
)

# Limits we were told about, so each one is announced once (efactura.quota-exhausted).
quota_ledger = Table(
    "quota_ledger", metadata,
    Column("kind", String(64), primary_key=True),
    Column("scope_key", String(64), primary_key=True),
    Column("resets_at", DateTime(timezone=True), primary_key=True),
    Column("text", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# --------------------------------------------------------------------------------------------------
# Outgoing submissions (invoices, credit notes, buyer messages); see the submissions package.

# The sent invoice / error report row that answers a submission (set when linked; migration 0003).
invoices.append_column(Column("submission_id", String(64)))
Index("ix_invoices_cif_upload_index", invoices.c.cif, invoices.c.upload_index)

submissions = Table(
    "submissions", metadata,
    Column("id", String(64), primary_key=True),
    Column("cif", String(16), nullable=False),  # the uploading company (ANAF `cif` parameter)
    Column("kind", String(16), nullable=False),  # invoice | buyer_message
    Column("idempotency_key", String(200), nullable=False),
    Column("key_source", String(10), nullable=False),  # client | derived
    Column("xml_sha256", String(64), nullable=False),
    Column("xml_key", Text, nullable=False),
    Column("xml_size", Integer, nullable=False),
    Column("standard", String(8), nullable=False),  # UBL | CN | RASP
    Column("document_type", String(20)),  # invoice | credit_note | buyer_message
    Column("extern", Boolean, nullable=False, server_default=text("false")),
    Column("autofactura", Boolean, nullable=False, server_default=text("false")),
    Column("b2c", Boolean, nullable=False, server_default=text("false")),
    # why the document goes through that route and whether with extern=DA (submissions.routing.RouteReason);
    # NULL for buyer messages and submissions filed before it was recorded
    Column("route_reason", String(32)),
    Column("validate_first", Boolean, nullable=False, server_default=text("false")),
    Column("number", Text),
    Column("issue_date", Date),
    Column("seller_cif", String(32)),
    Column("buyer_cif", String(32)),
    Column("invoice_id", BigInteger),  # buyer message: the received invoice it answers
    Column("ref_upload_index", String(32)),  # buyer message: that invoice's index_incarcare
    Column("submitted_by", String(64)),
    Column("state", String(16), nullable=False, server_default="received"),
    Column("lease_owner", String(64)),
    Column("lease_until", DateTime(timezone=True)),  # database time
    Column("next_attempt_at", DateTime(timezone=True)),  # platform clock
    Column("upload_attempts", Integer, nullable=False, server_default="0"),
    Column("upload_started_at", DateTime(timezone=True)),  # set (committed) right before the upload call
    Column("uploaded_at", DateTime(timezone=True)),
    Column("anaf_index", String(32)),
    Column("upload_response_key", Text),
    Column("anaf_state", String(64)),  # last stareMesaj answer
    Column("id_descarcare", String(32)),
    Column("state_checks", Integer, nullable=False, server_default="0"),
    Column("next_check_at", DateTime(timezone=True)),
    Column("last_checked_at", DateTime(timezone=True)),
    Column("validation", JSONB),
    Column("error_stage", String(16)),  # validation | upload | processing
    Column("errors", JSONB),  # explained errors
    Column("error_report_key", Text),
    Column("error_report_invoice_id", BigInteger),
    Column("sent_invoice_id", BigInteger),
    Column("last_error", Text),
    Column("reconcile_note", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True)),
    Column("deadline_warned_at", DateTime(timezone=True)),  # filing-deadline-approaching published
    UniqueConstraint("cif", "idempotency_key", name="uq_submissions_cif_key"),
    Index("ix_submissions_cif_created", "cif", text("created_at DESC")),
    Index("ix_submissions_cif_index", "cif", "anaf_index"),
    Index("ix_submissions_active", "state",
          postgresql_where=text("state IN ('received','uploading','processing','unknown') "
                                "OR (state = 'accepted' AND sent_invoice_id IS NULL)")),
    Index("ix_submissions_deadline_unwarned", "issue_date",
          postgresql_where=text("kind = 'invoice' AND deadline_warned_at IS NULL")),
)
