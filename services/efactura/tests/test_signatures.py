"""Unit tests (no I/O): ANAF's two genuine signature shapes (../shared/anaf-api.md 2.6), built the way ANAF builds
them with a certificate like ANAF's, and everything else refused; XML with a DTD anywhere never reaches the parser."""
from __future__ import annotations

import io
import os
import re
import threading
import zipfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from anaf_emulator.signing import sign_detached, sign_document, sign_enveloped, signing_cert
from anaf_emulator.ubl import InvoiceSpec, Line, Party, render
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from spvhub_efactura.archive import HostileArchive, Limits, parse_xml, verify_signature
from spvhub_efactura.processing import process_zip, unreadable_fields
from spvhub_efactura.settings import EMULATOR_SIGNER_SHA256
from spvhub_efactura.ubl import Document

NOW = datetime.now(UTC).replace(microsecond=0)
DATA_CREARE = NOW - timedelta(days=30)


def _anaf_like(not_before: datetime, not_after: datetime) -> tuple[rsa.RSAPrivateKey, x509.Certificate, str]:
    """A key and a qualified-looking certificate shaped like ANAF's production signer (subject as in §2.6)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "RO"), x509.NameAttribute(NameOID.LOCALITY_NAME, "Bucuresti"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ministerul Finantelor Publice"),
        x509.NameAttribute(NameOID.SURNAME, "POPESCU"), x509.NameAttribute(NameOID.GIVEN_NAME, "ION"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Ministerul Finantelor Publice")])
    issuer = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "RO"),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Qualified CA stand-in"),
                        x509.NameAttribute(NameOID.COMMON_NAME, "Qualified CA stand-in")])
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(0x1F2E3D4C5B6A).not_valid_before(not_before).not_valid_after(not_after)
            .sign(ca_key, hashes.SHA256()))
    return key, cert, cert.fingerprint(hashes.SHA256()).hex()


@pytest.fixture(scope="module")
def anaf() -> tuple[rsa.RSAPrivateKey, x509.Certificate, str]:
    """Valid from a year before the message; expired today, before this test ran: still valid at data_creare."""
    return _anaf_like(DATA_CREARE - timedelta(days=365), NOW - timedelta(minutes=1))


def invoice() -> bytes:
    lines = [Line("Servicii contabilitate lunară", Decimal("2"), "H87", Decimal("1500.00"), "S", Decimal("21"))]
    return render(InvoiceSpec("FCT-42", date(2026, 3, 1), Party("12340170", "Vânzător Ștefan SRL"),
                              Party("14399840", "Cumpărător Țuică SA"), lines))


def flip(data: bytes, at: int) -> bytes:
    """One byte changed (to another printable byte, so the XML stays well formed where possible)."""
    b = data[at]
    return data[:at] + bytes([b + 1 if b not in (0x7A, 0x39, 0x5A, 0x7E) else b - 1]) + data[at + 1:]


def check(content: bytes, signature: bytes | None, trusted: list[str], at: datetime | None = DATA_CREARE):
    return verify_signature(content, signature, trusted, at=at)


# -- production: detached --------------------------------------------------------------------------------------

def test_production_shape_verifies_directly_with_sha1_and_the_raw_member_digest(anaf) -> None:
    key, cert, fp = anaf
    xml = invoice()
    sig = sign_detached(xml, key, cert)
    root = parse_xml(sig)
    assert root.tag == "{http://www.w3.org/2000/09/xmldsig#}Signature" and root.prefix is None
    assert b"xmldsig#rsa-sha1" in sig and b"REC-xml-c14n-20010315" in sig and b"Transforms" not in sig
    r = check(xml, sig, [fp])
    assert (r.status, r.shape, r.trusted) == ("valid", "detached", True), r
    assert r.signer_subject and "CN=Ministerul Finantelor Publice" in r.signer_subject
    assert r.signer_serial == "1f2e3d4c5b6a" and r.signer_sha256 == fp
    # the digest is over the raw bytes: the same document with the same canonical form is not what was signed
    assert check(xml + b"\n", sig, [fp]).status == "invalid"
    assert check(xml.replace(b"?>", b" ?>", 1), sig, [fp]).status == "invalid"


def test_a_valid_signature_by_an_unknown_signer_is_never_valid(anaf) -> None:
    key, cert, fp = anaf
    xml = invoice()
    for sig in (sign_detached(xml, key, cert), sign_enveloped(xml, key, cert)):
        r = check(xml, sig, [EMULATOR_SIGNER_SHA256])
        assert r.status == "valid_untrusted_signer" and r.trusted is False and r.signer_sha256 == fp
        assert check(xml, sig, []).status == "valid_untrusted_signer"
        # fingerprints are compared case- and colon-insensitively
        assert check(xml, sig, [":".join(fp[i:i + 2] for i in range(0, 64, 2)).upper()]).status == "valid"


def test_one_byte_changed_in_either_member_of_the_production_shape_is_invalid(anaf) -> None:
    key, cert, fp = anaf
    xml = invoice()
    sig = sign_detached(xml, key, cert)
    for at in (0, len(xml) // 3, len(xml) // 2, xml.index(b"FCT-42") + 4, len(xml) - 2):
        assert check(flip(xml, at), sig, [fp]).status == "invalid", at
    text = sig.decode()
    spots = [text.index("<DigestValue>") + 14, text.index("<SignatureValue>") + 20, text.index("rsa-sha1") + 6,
             text.index('URI=""') + 1, text.index("REC-xml-c14n") + 4, text.index("</SignatureValue>") - 3]
    for at in spots:
        r = check(xml, flip(sig, at), [fp])
        assert r.status == "invalid", (at, sig[at - 10:at + 10], r)
    # inside a CA-issued certificate (ANAF's production one), without the CA the change shows as a certificate
    # that is no longer the pinned one: never `valid`
    cert_at = text.index("<X509Certificate>")
    for at in (cert_at + 30, cert_at + 200, text.index("</X509Certificate>") - 30):
        assert check(xml, flip(sig, at), [fp]).status in ("invalid", "valid_untrusted_signer"), at
    # the emulator's self-signed certificate carries its own proof: any change to it is `invalid`
    own = sign_document(xml)
    cert_at = own.index(b"<X509Certificate>")
    for at in (cert_at + 30, cert_at + 200, cert_at + 600):
        assert check(xml, flip(own, at), [EMULATOR_SIGNER_SHA256]).status == "invalid", at


def test_expired_today_but_valid_at_data_creare_is_valid_and_judged_at_data_creare(anaf) -> None:
    key, cert, fp = anaf
    xml = invoice()
    sig = sign_detached(xml, key, cert)
    assert cert.not_valid_after_utc < datetime.now(UTC)  # expired before this test ran
    assert check(xml, sig, [fp], at=DATA_CREARE).status == "valid"
    late = check(xml, sig, [fp], at=datetime.now(UTC))
    assert late.status == "invalid" and "not valid at" in late.detail
    early = check(xml, sig, [fp], at=cert.not_valid_before_utc - timedelta(days=1))
    assert early.status == "invalid"
    # through the sync's processing, with the message's data_creare
    p = process_zip(zip_of(xml, sig), Limits(), [fp], at=DATA_CREARE)
    assert p.status == "ok" and p.signature and p.signature.status == "valid"


# -- test environment: enveloped, pretty-printed after signing ---------------------------------------------------

def test_test_shape_verifies_although_pretty_printed_after_signing(anaf) -> None:
    key, cert, fp = anaf
    xml = invoice()
    sig = sign_enveloped(xml, key, cert)
    assert b"<SignedInfo>\n" in sig and b"enveloped-signature" in sig and b"rsa-sha256" in sig
    r = check(xml, sig, [fp])
    assert (r.status, r.shape) == ("valid", "enveloped"), r
    # the same signature not pretty-printed verifies too
    assert check(xml, sign_enveloped(xml, key, cert, pretty=False), [fp]).status == "valid"


def test_one_byte_changed_in_either_member_of_the_test_shape_is_invalid(anaf) -> None:
    key, cert, fp = anaf
    xml = invoice()
    sig = sign_enveloped(xml, key, cert)
    for at in (xml.index(b"FCT-42") + 4, xml.index(b"1500") + 1, xml.index(b"Invoice") + 2):
        assert check(flip(xml, at), sig, [fp]).status == "invalid", at
    text = sig.decode()
    spots = [text.index("FCT-42") + 4, text.index("<DigestValue>") + 14, text.index("<SignatureValue>") + 20,
             text.index("<X509Certificate>") + 200, text.index("enveloped-signature") + 2]
    for at in spots:
        assert check(xml, flip(sig, at), [fp]).status == "invalid", (at, sig[at - 10:at + 10])


def test_anything_else_is_invalid(anaf) -> None:
    key, cert, fp = anaf
    xml = invoice()
    detached, enveloped = sign_detached(xml, key, cert), sign_enveloped(xml, key, cert)
    assert check(xml, None, [fp]).status == "missing"
    cases = {
        "no signature at all": xml,
        "not XML": b"garbage",
        "two signatures": enveloped.replace(b"</Invoice>", detached.split(b"?>", 1)[1] + b"</Invoice>"),
        "signature nested below the root": enveloped.replace(b"<Signature ", b"<W xmlns='urn:w'><Signature ")
        .replace(b"</Signature>", b"</Signature></W>"),
        "SHA-1 outside the production shape": enveloped.replace(b"xmldsig-more#rsa-sha256", b"xmldsig#rsa-sha1"),
        "a second reference": detached.replace(b"</Reference>", b"</Reference><Reference URI=\"#x\"/>"),
        "a transform in the detached shape": detached.replace(
            b'<DigestMethod', b'<Transforms><Transform Algorithm="http://www.w3.org/2000/09/xmldsig#'
                              b'enveloped-signature"/></Transforms><DigestMethod'),
        "an XPath transform": enveloped.replace(
            b'xmldsig#enveloped-signature"/>', b'xmldsig#enveloped-signature"/><Transform '
                                              b'Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"/>'),
        "a DTD in the signature file": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "y">]>'
                                        + detached.split(b"?>", 1)[1],
    }
    for name, bad in cases.items():
        r = check(xml, bad, [fp])
        assert r.status == "invalid", (name, r)
    # the emulator's own, in both shapes, is valid only where its certificate is trusted
    for shape in ("production", "test"):
        sig = sign_document(xml, shape)
        assert check(xml, sig, [EMULATOR_SIGNER_SHA256]).status == "valid"
        assert check(xml, sig, [fp]).status == "valid_untrusted_signer"
    assert signing_cert().fingerprint(hashes.SHA256()).hex() == EMULATOR_SIGNER_SHA256


def test_verification_is_fast() -> None:
    import time

    xml = invoice()
    sig = sign_document(xml)
    root = parse_xml(xml)
    started = time.perf_counter()
    for _ in range(200):
        assert verify_signature(xml, sig, [EMULATOR_SIGNER_SHA256], content_root=root).status == "valid"
    assert (time.perf_counter() - started) / 200 < 0.005  # about 0.2 ms here; the sync does ~250 a second


# -- XML with a DTD anywhere ------------------------------------------------------------------------------------

def zip_of(xml: bytes, sig: bytes | None = None, index: str = "5001") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{index}.xml", xml)
        if sig is not None:
            zf.writestr(f"semnatura_{index}.xml", sig)
    return buf.getvalue()


def test_a_doctype_past_4_kib_naming_a_local_file_is_refused_and_the_file_never_opened(tmp_path) -> None:
    fifo = tmp_path / "secret"
    os.mkfifo(fifo)  # opening it to read would block until a writer comes: a parser touching it hangs
    pad = b"<!--" + b"x" * 6000 + b"-->\n"
    for decl in (f'<!DOCTYPE Invoice SYSTEM "file://{fifo}">'.encode(),
                 f'<!DOCTYPE Invoice [<!ENTITY s SYSTEM "file://{fifo}">]>'.encode(),
                 f'<!doctype Invoice PUBLIC "-//x//y" "{fifo}">'.encode()):
        xml = b'<?xml version="1.0" encoding="UTF-8"?>\n' + pad + decl + b"\n" + invoice().split(b"?>", 1)[1]
        assert xml.index(decl) > 4096
        result: dict[str, object] = {}

        def run(data: bytes = xml, result: dict[str, object] = result) -> None:
            try:
                result["p"] = process_zip(zip_of(data), Limits(), [EMULATOR_SIGNER_SHA256])
            except BaseException as e:  # noqa: BLE001 - reported below
                result["error"] = e
        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(10)
        if t.is_alive():  # the parser opened the FIFO: release it, then fail
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
            t.join(5)
            pytest.fail("the parser opened the file named by the DTD")
        p = result.get("p")
        assert p is not None and p.status == "hostile" and "DTD" in (p.error or ""), result  # type: ignore[attr-defined]
        with pytest.raises(HostileArchive):
            parse_xml(xml)


def test_unreadable_header_fields_are_named() -> None:
    xml = invoice()
    xml = re.sub(rb"<cbc:IssueDate>[^<]+", b"<cbc:IssueDate>0000-01-01", xml)
    xml = re.sub(rb"(<cbc:PayableAmount[^>]*>)[^<]+", rb"\g<1>12,5 lei", xml)
    root = parse_xml(xml)
    p = process_zip(zip_of(xml, sign_document(xml)), Limits(), [EMULATOR_SIGNER_SHA256])
    assert p.status == "ok" and isinstance(p.parsed, Document)
    assert p.parsed.issue_date is None and p.parsed.payable is None
    problems = unreadable_fields(root, p.parsed)
    assert problems == p.problems and any(x.startswith("issue_date: '0000-01-01'") for x in problems)
    assert any(x.startswith("payable: '12,5 lei'") for x in problems)
