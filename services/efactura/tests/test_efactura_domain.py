"""Unit tests of the sync's rules (no I/O): ledger transitions, the retry schedule, the next sync, a list item as the
ledger records it, and the invoice row and event built from a parsed document."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from spvhub_common.events.efactura import InvoiceDownloaded, InvoiceErrorReceived
from spvhub_efactura import domain as d
from spvhub_efactura.ubl import BuyerMessage, Document, ErrorReport, PartyInfo, VatInfo

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)  # 10:00 in Bucharest
OWN, OTHER = "14399840", "16912950"
CAPACITY = {"total_amount": d.ColumnCapacity(precision=19, scale=2, numeric=True),
            "currency": d.ColumnCapacity(length=3), "number": d.ColumnCapacity(indexed=500)}


# -- the ledger's states --------------------------------------------------------------------------------------------

def test_pending_messages_move_terminal_ones_never() -> None:
    S = d.MessageState
    for src in (S.LISTED, S.FAILED):
        assert all(d.may_move(src, dst) for dst in (S.FAILED, S.LOST, S.ARCHIVED))
        assert not d.may_move(src, S.LISTED)
    for src in (S.ARCHIVED, S.LOST):
        assert not any(d.may_move(src, dst) for dst in S)
    assert d.pending_states() == ["failed", "listed"]


def test_a_failed_download_is_retried_with_backoff_until_the_purge() -> None:
    purge = T0 + timedelta(days=3)
    at = [d.download_retry_at(T0, purge, attempts, base=60, cap=3600) for attempts in range(0, 9)]
    assert [(a - T0).total_seconds() for a in at if a] == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert d.download_retry_at(purge, purge, 0, base=60, cap=3600) is None  # purged: lost, never retried
    assert d.download_retry_at(purge + timedelta(seconds=1), purge, 5, base=60, cap=3600) is None
    assert d.archive_retry_at(T0, 2, base=60, cap=3600) == T0 + timedelta(seconds=240)


def test_the_next_sync_comes_sooner_for_a_retry_but_never_at_once() -> None:
    assert d.next_sync_at(T0, 900, None) == T0 + timedelta(seconds=900)
    assert d.next_sync_at(T0, 900, T0 + timedelta(seconds=120)) == T0 + timedelta(seconds=120)
    assert d.next_sync_at(T0, 900, T0 + timedelta(hours=2)) == T0 + timedelta(seconds=900)
    assert d.next_sync_at(T0, 900, T0 - timedelta(hours=1)) == T0 + d.MIN_RESYNC  # already due: no spinning


# -- a list item ----------------------------------------------------------------------------------------------------

def test_a_list_item_as_the_ledger_records_it() -> None:
    m = d.listed_message(OWN, {"id": " 3001 ", "cif": f"RO{OWN}", "data_creare": "202603101000",
                               "tip": "FACTURA PRIMITA", "id_solicitare": "5001", "detalii": "x" * 3000}, T0)
    assert m is not None
    assert (m.cif, m.message_id, m.kind, m.upload_index) == (OWN, "3001", d.MessageKind.RECEIVED, "5001")
    assert m.listed_at == T0 and m.purge_at == T0 + timedelta(days=60)  # data_creare is Bucharest wall time
    assert len(m.detalii) == 2000


def test_list_items_of_another_cif_are_skipped_unusable_ids_refused_odd_dates_kept() -> None:
    assert d.listed_message(OWN, {"id": "3001", "cif": OTHER}, T0) is None
    with pytest.raises(ValueError):
        d.listed_message(OWN, {"id": "abc"}, T0)
    m = d.listed_message(OWN, {"id": "3002", "data_creare": "yesterday", "tip": "T" * 100}, T0)
    assert m is not None and m.listed_at == T0 and m.upload_index is None and len(m.tip) == 80
    assert m.kind == d.MessageKind.OTHER


# -- the invoice row and its event ----------------------------------------------------------------------------------

def archived(tip: str = "FACTURA PRIMITA", detalii: str | None = None) -> d.ArchivedMessage:
    return d.ArchivedMessage(OWN, "3001", tip, T0, "5001",
                             detalii if detalii is not None else f"Factura cu id_incarcare=5001 emisa de "
                                                                 f"cif_emitent={OTHER} pentru cif_beneficiar={OWN}")


def invoice(**kw: object) -> Document:
    doc = Document("invoice", number="F-1", issue_date=date(2026, 3, 9), type_code="380", currency="RON",
                   seller=PartyInfo(cif=OTHER, name="Vânzător SRL"), buyer=PartyInfo(cif=OWN, name="Cumpărător SRL"),
                   line_extension=Decimal("100"), tax_inclusive=Decimal("121.004"), payable=Decimal("121"),
                   vat_amount=Decimal("21"), vat_breakdown=[VatInfo("S", Decimal("21"), Decimal("100"), Decimal("21"))])
    for k, v in kw.items():
        setattr(doc, k, v)
    return doc


def row_of(msg: d.ArchivedMessage, doc: d.Parsed, **kw: object) -> d.InvoiceRow:
    args: dict[str, object] = {"zip_key": "efactura/z.zip", "xml_key": None, "signature_status": "valid",
                               "signature": None, "problems": [], "capacity": CAPACITY}
    args.update(kw)
    return d.invoice_row(msg, doc, **args)  # type: ignore[arg-type]


def test_a_received_invoice_row_and_its_event() -> None:
    row = row_of(archived(), invoice())
    assert (row.direction, row.partner_cif, row.partner_name) == ("received", OTHER, "Vânzător SRL")
    assert row.total_amount == Decimal("121.00") and row.net_amount == Decimal("100.00")  # to cents
    assert row.vat_breakdown == [{"category": "S", "percent": "21", "taxable": "100", "amount": "21",
                                  "exemption": None}]
    assert row.problem is None
    event = d.document_event(row, invoice(), invoice_id=7, blob_keys={"zip": "efactura/z.zip"}, submission_id=None)
    assert isinstance(event, InvoiceDownloaded)
    assert (event.invoice_id, event.direction, event.partner_cif, event.total_amount, event.signature_valid) == (
        7, "received", OTHER, Decimal("121.00"), True)


def test_the_parties_of_detalii_decide_the_direction_over_the_list_tip() -> None:
    # self-billing: the buyer files in the seller's name; we are the seller whatever the tip says
    detalii = f"Factura autofactura transmisa de cif={OTHER} in numele cif={OWN}"
    row = row_of(archived("FACTURA PRIMITA", detalii), invoice(seller=PartyInfo(cif=OWN), buyer=PartyInfo(cif=OTHER)))
    assert (row.direction, row.partner_cif, row.self_billing) == ("sent", OTHER, True)


def test_a_value_no_column_holds_is_left_empty_and_named() -> None:
    row = row_of(archived(), invoice(tax_inclusive=Decimal("1E+30"), currency="EURO"))
    assert row.total_amount is None and row.currency is None
    assert row.problem == "currency: 4 characters, the column holds 3; total_amount: 1E+30 does not fit numeric(19,2)"
    row = row_of(archived(), invoice(number="9" * 600), problems=["due_date: 2026-02-30"])
    assert row.number is None and row.problem == "due_date: 2026-02-30; number: 600 characters, at most 500 are kept"


def test_a_row_the_database_refused_keeps_only_the_essentials() -> None:
    row = row_of(archived(), invoice(), refused="22003: numeric field overflow")
    assert (row.direction, row.document_type, row.zip_key) == ("received", "invoice", "efactura/z.zip")
    assert row.number is None and row.total_amount is None and row.self_billing is False and row.details is None
    assert row.problem == "parsed fields not stored, the database refused them: 22003: numeric field overflow"


def test_an_error_report_row_and_its_event_name_the_submission() -> None:
    report = ErrorReport(upload_index="5002", issuer_cif=OWN, errors=[f"E{i}" for i in range(60)])
    row = row_of(archived("ERORI FACTURA"), report)
    assert (row.direction, row.document_type, row.upload_index, row.seller_cif) == ("sent", "error_report", "5002",
                                                                                     OWN)
    event = d.document_event(row, report, invoice_id=8, blob_keys={}, submission_id="sub-1")
    assert isinstance(event, InvoiceErrorReceived)
    assert (event.submission_id, event.upload_index, len(event.errors)) == ("sub-1", "5002", 50)


def test_a_buyer_message_has_a_row_and_no_event() -> None:
    msg = BuyerMessage(upload_index="5001", message="Nu recunosc factura")
    row = row_of(archived("MESAJ CUMPARATOR PRIMIT / TRANSMIS"), msg)
    assert (row.direction, row.document_type, row.partner_cif) == ("received", "buyer_message", OTHER)
    assert row.details == {"message": "Nu recunosc factura", "invoice_upload_index": "5001"}
    assert d.document_event(row, msg, invoice_id=9, blob_keys={}, submission_id=None) is None


def test_what_the_ledger_says_is_wrong_with_an_archived_document() -> None:
    assert d.archive_problem("ok", None, "valid", "") is None
    assert d.archive_problem("ok", None, None, None) is None
    assert d.archive_problem("hostile", "DTD", "valid", "") == "hostile: DTD"
    assert d.archive_problem("ok", None, "invalid", "digest") == "signature_invalid: digest"
    assert d.money(Decimal("Infinity")) == Decimal("Infinity") and d.money(None) is None
    assert d.jsonable({1: (Decimal("1.5"), date(2026, 1, 2))}) == {"1": ["1.5", "2026-01-02"]}
