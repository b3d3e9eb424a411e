"""Unit tests (no I/O): untrusted ZIP/XML handling, UBL reading with any prefixes, error reports, signatures, PDF."""
from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from anaf_emulator.signing import sign_document
from anaf_emulator.ubl import InvoiceSpec, Line, Party, error_file, render, render_rasp
from spvhub_common.ids import strip_ro
from spvhub_efactura import domain
from spvhub_efactura.archive import Limits
from spvhub_efactura.pdf import render_pdf
from spvhub_efactura.processing import process_zip as _process_zip
from spvhub_efactura.settings import EMULATOR_SIGNER_SHA256
from spvhub_efactura.ubl import BuyerMessage, Document, ErrorReport


def spec(credit: bool = False, **kw: object) -> InvoiceSpec:
    lines = [Line("Servicii contabilitate lunară", Decimal("2"), "H87", Decimal("1500.00"), "S", Decimal("21")),
             Line("Hârtie A4 ţară şi ș", Decimal("10"), "H87", Decimal("24.90"), "Z", Decimal("0"))]
    return InvoiceSpec("FCT-42", date(2026, 3, 1), Party("12340170", "Vânzător Ștefan SRL"),
                       Party("14399840", "Cumpărător Țuică SA"), lines, credit_note=credit, **kw)  # type: ignore[arg-type]


def process_zip(data: bytes, limits: Limits, **kw: object):  # type: ignore[no-untyped-def]
    """The sync's processing, trusting the emulator's signer as the tests' settings do."""
    return _process_zip(data, limits, [EMULATOR_SIGNER_SHA256], **kw)  # type: ignore[arg-type]


def make_zip(content: bytes, index: str = "5001", sign: bool = True, extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{index}.xml", content)
        if sign:
            zf.writestr(f"semnatura_{index}.xml", sign_document(content))
        for k, v in (extra or {}).items():
            zf.writestr(k, v)
    return buf.getvalue()


def test_invoice_is_read_and_signature_verifies() -> None:
    p = process_zip(make_zip(render(spec())), Limits())
    assert p.status == "ok" and p.signature and p.signature.status == "valid"
    assert p.signature.signer_subject and "ANAF TEST" in p.signature.signer_subject
    doc = p.parsed
    assert isinstance(doc, Document)
    assert doc.number == "FCT-42" and doc.type_code == "380" and doc.seller.cif == "12340170"
    assert doc.buyer.cif == "14399840" and doc.tax_exclusive == Decimal("3249.00")
    assert doc.vat_amount == Decimal("630.00") and doc.tax_inclusive == Decimal("3879.00")
    assert {v.category for v in doc.vat_breakdown} == {"S", "Z"} and len(doc.lines) == 2 and doc.line_count == 2
    assert doc.lines[0].net is not None and doc.lines[0].vat_category


def test_the_sync_reads_header_fields_and_counts_lines_without_reading_them() -> None:
    full = process_zip(make_zip(render(spec())), Limits())
    lean = process_zip(make_zip(render(spec())), Limits(), keep_content=False)
    assert isinstance(lean.parsed, Document) and isinstance(full.parsed, Document)
    assert lean.content is None and lean.parsed.lines == [] and lean.parsed.line_count == 2
    assert lean.parsed.summary() == full.parsed.summary()


def test_other_namespace_prefixes_and_credit_note() -> None:
    xml = render(spec(credit=True, preceding="FCT-41"))
    xml = xml.replace(b"cac:", b"a:").replace(b"xmlns:cac=", b"xmlns:a=").replace(b"cbc:", b"b:") \
        .replace(b"xmlns:cbc=", b"xmlns:b=").replace(b'<CreditNote xmlns="', b'<ubl:CreditNote xmlns:ubl="') \
        .replace(b"</CreditNote>", b"</ubl:CreditNote>")
    p = process_zip(make_zip(xml), Limits())
    assert p.status == "ok", p.error
    doc = p.parsed
    assert isinstance(doc, Document) and doc.document_type == "credit_note" and doc.type_code == "381"
    assert doc.preceding_number == "FCT-41" and doc.due_date == date(2026, 3, 31)


def test_error_report_and_buyer_message() -> None:
    p = process_zip(make_zip(error_file(5001, "12340170", ["E: regula R6.1\n CIF"])), Limits())
    assert isinstance(p.parsed, ErrorReport) and p.parsed.upload_index == "5001"
    assert p.parsed.errors == ["E: regula R6.1\n CIF"]
    p = process_zip(make_zip(render_rasp(777, "Factura nu corespunde")), Limits())
    assert isinstance(p.parsed, BuyerMessage) and p.parsed.upload_index == "777"


def test_tampered_document_fails_signature() -> None:
    xml = render(spec())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("5001.xml", xml.replace(b"FCT-42", b"FCT-43"))
        zf.writestr("semnatura_5001.xml", sign_document(xml))
    p = process_zip(buf.getvalue(), Limits())
    assert p.status == "ok" and p.signature and p.signature.status == "invalid"
    tampered_sig = sign_document(xml, "test").replace(b"FCT-42", b"FCT-44")
    p = process_zip(make_zip(xml, sign=False, extra={"semnatura_5001.xml": tampered_sig}), Limits())
    assert p.signature and p.signature.status == "invalid"


def test_forged_or_wrapped_signatures_are_invalid() -> None:
    import base64
    import re

    xml = render(spec())
    signed = sign_document(xml, "test")
    # a forged digest value (the content no longer matches what SignedInfo says was signed)
    forged = re.sub(rb"<DigestValue>[^<]+</DigestValue>",
                    b"<DigestValue>" + base64.b64encode(b"x" * 32) + b"</DigestValue>", signed)
    # a broken signature value over an untouched SignedInfo
    broken = re.sub(rb"<SignatureValue>([A-Za-z0-9+/]{8})", b"<SignatureValue>AAAAAAAA", signed)
    # an extra element wrapped into the signature file beside the signed document
    wrapped = signed.replace(b"</Invoice>", b"<Extra xmlns='urn:x'/></Invoice>")
    for bad in (forged, broken, wrapped):
        assert bad != signed
        p = process_zip(make_zip(xml, sign=False, extra={"semnatura_5001.xml": bad}), Limits())
        assert p.signature and p.signature.status == "invalid", p.signature


def test_hostile_inputs_are_reported_not_raised() -> None:
    bomb_xml = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">&lol2;</Invoice>"""
    assert process_zip(make_zip(bomb_xml, sign=False), Limits()).status == "hostile"
    xxe = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>"""
    assert process_zip(make_zip(xxe, sign=False), Limits()).status == "hostile"
    # zip bomb: a highly compressible member beyond the ratio
    big = b"<a>" + b" " * (5 * 1024 * 1024) + b"</a>"
    assert process_zip(make_zip(big, sign=False), Limits(max_ratio=50)).status == "hostile"
    # path traversal member
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../etc/cron.d/x", b"boom")
        zf.writestr("5001.xml", render(spec()))
    assert process_zip(buf.getvalue(), Limits()).status == "hostile"
    # garbage and a ZIP without the content member
    assert process_zip(b"not a zip at all", Limits()).status == "unparseable"
    assert process_zip(make_zip(b"<x/>", index="abc", sign=False), Limits()).status == "unparseable"
    # well formed but unknown document: archived and flagged
    assert process_zip(make_zip(b"<Foo xmlns='urn:x'/>", sign=False), Limits()).status == "unparseable"
    # truncated XML
    assert process_zip(make_zip(b"<Invoice><cbc:ID>", sign=False), Limits()).status == "unparseable"


def test_pdf_renders_with_romanian_text() -> None:
    pdf = render_pdf(render(spec()), message_id="3001", listed_at="01.03.2026 10:00")
    assert pdf.startswith(b"%PDF") and len(pdf) > 2000


def test_domain_rules() -> None:
    assert domain.kind_of("MESAJ CUMPARATOR PRIMIT / MESAJ CUMPARATOR TRANSMIS") == domain.MessageKind.BUYER_MESSAGE
    p = domain.parse_detalii("Factura cu id_incarcare=5 transmisa de cif=222  ca autofactura in numele cif=111")
    assert (p.seller, p.buyer, p.self_billing) == ("111", "222", True)
    normal = "Factura cu id_incarcare=5 emisa de cif_emitent=1 pentru cif_beneficiar=2"
    assert domain.parse_detalii(normal).seller == "1"
    assert strip_ro(" ro 123 ") == "123"
    assert domain.parse_data_creare("202603101200") == datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
    now = datetime(2026, 3, 10, tzinfo=UTC)
    w = domain.list_window(now, None, start_margin=timedelta(minutes=10), end_margin=timedelta(seconds=60),
                           overlap=timedelta(hours=1))
    assert w.first_sync and w.start == now - timedelta(days=60) + timedelta(minutes=10)
    w2 = domain.list_window(now, now - timedelta(minutes=15), start_margin=timedelta(minutes=10),
                            end_margin=timedelta(seconds=60), overlap=timedelta(hours=1))
    assert w2.start == now - timedelta(minutes=75) and not w2.first_sync
    urgent = domain.priority_key(now, now + timedelta(days=2), now - timedelta(days=58), timedelta(days=7))
    fresh = domain.priority_key(now, now + timedelta(days=59), now - timedelta(days=1), timedelta(days=7))
    assert urgent < fresh


def test_invoice_details_become_json_values_as_json_dumps_with_str_would_write_them() -> None:
    import json
    value = {"total": Decimal("1190.50"), "issued": date(2026, 3, 1), "rates": (Decimal("19"), None),
             "seller": {"cif": "123", "vat": True, "lines": 3, "ratio": 0.5}, 7: "int key"}
    assert domain.jsonable(value) == json.loads(json.dumps(value, default=str))
    assert domain.jsonable(value)["rates"] == ["19", None] and domain.jsonable(value)["7"] == "int key"
