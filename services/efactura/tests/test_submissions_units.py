"""Submission units: the error catalogue (codes, fields, RO/EN, fallback), the checks before filing, keys, backoff."""
from __future__ import annotations

from dataclasses import fields
from datetime import date

import pytest
from spvhub_common.errors import AppError
from spvhub_efactura.adapters.orm import submissions
from spvhub_efactura.anaf_errors import explain
from spvhub_efactura.submissions.document import inspect_invoice_xml, rasp_xml
from spvhub_efactura.submissions.domain import check_backoff, idempotency_key
from spvhub_efactura.submissions.drafts import Draft, submission_drafts
from spvhub_efactura.submissions.repository import Submission
from submissions_kit import invoice_xml


def test_records_are_their_tables() -> None:
    """A row is read whole into its record: a column added to the table without its field (or the reverse) fails
    here rather than on the first read."""
    assert {f.name for f in fields(Submission)} == set(submissions.c.keys())
    assert {f.name for f in fields(Draft)} == set(submission_drafts.c.keys())


def test_explain_known_and_unknown_codes() -> None:
    e = explain("E: validari globale  SCHEMATRON   eroare: [BR-RO-110]-Daca Codul tarii vanzatorului este \"RO\" ...")
    assert (e.code, e.field, e.known) == ("BR-RO-110", "BT-39", True) and "ISO 3166-2:RO" in e.explanation_ro
    e = explain("E: validari globale\n eroare regula: R6.1: CIF-ul vanzatorului nu figureaza in baza de date:123")
    assert e.code == "R6.1" and "CIF" in e.explanation_en and "\n" not in e.message
    e = explain("E: AccountingSupplierParty (1) sectiune Party (1) sectiune PartyTaxScheme (1) sectiune CompanyID (1)"
                "  eroare regula: R_BT_32_cui: Cui vanzator incorect / validare CUI (1234) ")
    assert e.code == "R_BT_32_cui" and e.field == "AccountingSupplierParty/Party/PartyTaxScheme/CompanyID"
    e = explain("Fisierul transmis nu este valid. org.xml.sax.SAXParseException; lineNumber: 15; columnNumber: 155; "
                "cvc-elt.1.a: Cannot find the declaration of element 'Invoice1'. ")
    assert e.code == "cvc-elt.1.a" and e.known and "UBL 2.1" in e.explanation_en
    e = explain("E: validari globale  SCHEMATRON   eroare: [BR-XX-999]-Ceva necunoscut (BT-77)")
    assert (e.code, e.field, e.known) == ("BR-XX-999", "BT-77", False)
    assert "Ceva necunoscut" in e.explanation_ro and "Ceva necunoscut" in e.explanation_en
    assert explain("W: [BR-CO-10]-x").severity == "warning"


def test_checks_before_filing() -> None:
    ins = inspect_invoice_xml(invoice_xml("12340006", "12340023", "A-1", date(2026, 1, 2)))
    assert (ins.standard, ins.number, ins.issue_date, ins.seller_cif) == ("UBL", "A-1", date(2026, 1, 2), "12340006")
    assert inspect_invoice_xml(invoice_xml("12340006", "12340023", credit_note=True)).standard == "CN"
    for body, code in ((b"", "xml_malformed"), (b"<a><b></a>", "xml_malformed"),
                       (b'<!DOCTYPE a SYSTEM "http://x/y.dtd"><a/>', "xml_malformed"),
                       (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><a>&e;</a>',
                        "xml_malformed"),
                       (b'<Invoice xmlns="urn:other"/>', "xml_not_ubl_invoice"),
                       (b"<a/>" + b" " * 20, "xml_too_large")):
        with pytest.raises(AppError) as ei:
            inspect_invoice_xml(body, max_bytes=22 if code == "xml_too_large" else 10_000)
        assert ei.value.code == code, body


def test_keys_backoff_rasp() -> None:
    assert idempotency_key(None, "123", " F-1 ", date(2026, 1, 2)) == ("derived:123:F-1:2026-01-02", "derived")
    assert idempotency_key("abc-1", None, None, None) == ("abc-1", "client")
    with pytest.raises(AppError):
        idempotency_key("has space", None, None, None)
    with pytest.raises(AppError):
        idempotency_key(None, "123", None, date(2026, 1, 2))
    assert [check_backoff(n, 5, 60) for n in (1, 2, 3, 5, 9)] == [5, 10, 20, 60, 60]
    assert b'index_incarcare="5001"' in rasp_xml("5001", 'a "quoted" <msg>')
