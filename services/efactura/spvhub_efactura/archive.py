"""Reading ANAF's downloaded ZIPs as untrusted input: size, member-name and ratio checks, hardened XML
parsing (no DTD, no entities, no network) and XML-DSig verification against the certificate in the file."""
from __future__ import annotations

import base64
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from lxml import etree

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
_CONTENT_RE = re.compile(r"^\d{1,20}\.xml$")
_SIGNATURE_RE = re.compile(r"^semnatura_\d{1,20}\.xml$")


class HostileArchive(Exception):
    """The ZIP or XML breaks a safety rule (bomb, traversal, DTD/entities, oversize)."""


class UnreadableArchive(Exception):
    """Not a ZIP with the expected members, or XML that is not well formed."""


@dataclass(frozen=True)
class Limits:
    max_zip_bytes: int = 30 * 1024 * 1024
    max_member_bytes: int = 60 * 1024 * 1024
    max_ratio: int = 200
    max_members: int = 8


@dataclass
class Unpacked:
    content_name: str
    content: bytes
    signature_name: str | None
    signature: bytes | None
    other_members: list[str] = field(default_factory=list)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_pis=True, collect_ids=False)


def parse_xml(data: bytes) -> Any:
    """Parse untrusted XML: any DOCTYPE/ENTITY is refused outright (defusedxml's rule), nothing is fetched."""
    head = data[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise HostileArchive("XML with a DTD or entity declarations is refused")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as e:
        raise UnreadableArchive(f"XML not well formed: {e}") from e
    doc = root.getroottree().docinfo
    if doc.internalDTD is not None or doc.externalDTD is not None:
        raise HostileArchive("XML with a DTD is refused")
    return root


def unpack(data: bytes, limits: Limits = Limits()) -> Unpacked:
    """Validate the ZIP and return the content member (`<index>.xml`) and the signature member."""
    if len(data) > limits.max_zip_bytes:
        raise HostileArchive(f"ZIP of {len(data)} bytes exceeds {limits.max_zip_bytes}")
    if not data.startswith(b"PK"):
        raise UnreadableArchive("not a ZIP file")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise UnreadableArchive(f"bad ZIP: {e}") from e
    if len(infos) > limits.max_members:
        raise HostileArchive(f"ZIP has {len(infos)} members (max {limits.max_members})")
    content: tuple[str, bytes] | None = None
    signature: tuple[str, bytes] | None = None
    others: list[str] = []
    total = 0
    for info in infos:
        name = info.filename
        if name.startswith(("/", "\\")) or ".." in name or "\\" in name or ":" in name or "\x00" in name:
            raise HostileArchive(f"unsafe member name {name!r}")
        if info.flag_bits & 0x1:
            raise HostileArchive(f"encrypted member {name!r}")
        if info.file_size > limits.max_member_bytes:
            raise HostileArchive(f"member {name!r} declares {info.file_size} bytes")
        if info.file_size > 1_000_000 and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise HostileArchive(f"member {name!r} compression ratio over {limits.max_ratio}")
        total += info.file_size
        if total > limits.max_member_bytes * 2:
            raise HostileArchive("ZIP expands beyond the allowed total")
        is_content = bool(_CONTENT_RE.match(name))
        is_sig = bool(_SIGNATURE_RE.match(name))
        if not (is_content or is_sig):
            others.append(name)
            continue
        body = _read_capped(zf, info, limits.max_member_bytes)
        if is_content:
            content = (name, body)
        else:
            signature = (name, body)
    if content is None:
        raise UnreadableArchive(f"no <index>.xml member (members: {[i.filename for i in infos][:8]})")
    return Unpacked(content[0], content[1], signature[0] if signature else None,
                    signature[1] if signature else None, others)


def _read_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """Read a member, stopping at `cap` bytes whatever its header claims (headers can lie)."""
    out = bytearray()
    try:
        with zf.open(info) as fh:
            while True:
                chunk = fh.read(65536)
                if not chunk:
                    break
                out += chunk
                if len(out) > cap:
                    raise HostileArchive(f"member {info.filename!r} expands beyond {cap} bytes")
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as e:
        raise UnreadableArchive(f"member {info.filename!r} unreadable: {e}") from e
    return bytes(out)


@dataclass(frozen=True)
class SignatureCheck:
    status: str  # valid | invalid | missing | error
    detail: str = ""
    signer_subject: str | None = None
    signer_sha256: str | None = None
    trusted: bool | None = None  # None: no trust anchors configured


_EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


def _ds(name: str) -> str:
    return f"{{{DS_NS}}}{name}"


def verify_signature(content: bytes, signature: bytes | None, trusted_sha256: list[str] | None = None,
                     content_root: Any = None) -> SignatureCheck:
    """Verify the enveloped XML-DSig of `semnatura_*.xml` with the certificate it carries, and that the signed
    document is exactly the content member. Never raises. `content_root`: the content already parsed.

    The usual shape of ANAF's signature (exc-c14n, rsa-sha256, one reference to the whole document with the
    enveloped-signature and exc-c14n transforms, sha256) is checked directly: the digest of the canonical
    content member must be the signed DigestValue, and SignedInfo must verify with the certificate's key. What
    is signed is then the very document we parse, so no wrapping trick in the signature file can matter. Any
    other shape, and every failure (to explain it), goes through signxml's general verifier."""
    if not signature:
        return SignatureCheck("missing", "no semnatura_*.xml member")
    try:
        root = parse_xml(signature)
        cert_el = root.find(f".//{_ds('X509Certificate')}")
        if cert_el is None or not (cert_el.text or "").strip():
            return SignatureCheck("invalid", "no X509Certificate in the signature")
        cert, fp, subject = _certificate(base64.b64decode("".join((cert_el.text or "").split())))
        trusted = None if not trusted_sha256 else fp.lower() in {t.lower().replace(":", "") for t in trusted_sha256}
        if _fast_valid(root, cert, content, content_root):
            return SignatureCheck("valid", "", subject, fp, trusted)
        from signxml import XMLVerifier  # imported lazily: heavy
        pem = cert.public_bytes(encoding=_pem_encoding()).decode("ascii")
        result = XMLVerifier().verify(root, x509_cert=pem, expect_references=1)
        signed = result.signed_xml
        if signed is None:
            return SignatureCheck("invalid", "nothing signed", subject, fp)
        sig = signed.find(_ds("Signature"))
        if sig is not None:
            signed.remove(sig)
        if _c14n(signed) != _c14n(parse_xml(content)):
            return SignatureCheck("invalid", "signed document differs from the content member", subject, fp)
        return SignatureCheck("valid", "", subject, fp, trusted)
    except (HostileArchive, UnreadableArchive) as e:
        return SignatureCheck("invalid", f"signature file: {e}")
    except Exception as e:  # noqa: BLE001 - signxml raises many types; any failure is "invalid"
        name = type(e).__name__
        status = "invalid" if "Invalid" in name or "Signature" in name else "error"
        return SignatureCheck(status, f"{name}: {str(e)[:300]}")


@lru_cache(maxsize=64)
def _certificate(der: bytes) -> tuple[Any, str, str]:
    """(certificate, SHA-256 fingerprint, subject) of a DER certificate. ANAF signs every message with the same
    few certificates: parse each once per process, not once per invoice."""
    cert = x509.load_der_x509_certificate(der)
    return cert, cert.fingerprint(hashes.SHA256()).hex(), cert.subject.rfc4514_string()


def _fast_valid(sig_root: Any, cert: Any, content: bytes, content_root: Any) -> bool:
    """True only when the usual ANAF signature shape verifies over exactly `content`; False means "ask the
    general verifier" (another shape, or not valid)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    sigs = sig_root.findall(_ds("Signature"))
    if len(sigs) != 1:
        return False
    si = sigs[0].find(_ds("SignedInfo"))
    value = sigs[0].find(_ds("SignatureValue"))
    if si is None or value is None:
        return False
    c14n = si.find(_ds("CanonicalizationMethod"))
    method = si.find(_ds("SignatureMethod"))
    refs = si.findall(_ds("Reference"))
    if c14n is None or c14n.get("Algorithm") != _EXC_C14N or len(c14n) or method is None \
            or method.get("Algorithm") != _RSA_SHA256 or len(refs) != 1 or refs[0].get("URI") != "":
        return False
    ref = refs[0]
    transforms = [t.get("Algorithm") for t in ref.findall(f"{_ds('Transforms')}/{_ds('Transform')}")]
    if transforms != [_ENVELOPED, _EXC_C14N] or any(len(t) for t in ref.iter(_ds("Transform"))):
        return False  # e.g. InclusiveNamespaces: the general verifier handles it
    dm, dv = ref.find(_ds("DigestMethod")), ref.find(_ds("DigestValue"))
    if dm is None or dm.get("Algorithm") != _SHA256 or dv is None or not (dv.text or "").strip():
        return False
    doc = content_root if content_root is not None else parse_xml(content)
    canonical = etree.tostring(doc.getroottree(), method="c14n", exclusive=True, with_comments=False)
    if hashlib.sha256(canonical).digest() != base64.b64decode("".join((dv.text or "").split())):
        return False
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    signed_info = etree.tostring(si, method="c14n", exclusive=True, with_comments=False)
    try:
        key.verify(base64.b64decode("".join((value.text or "").split())), signed_info, padding.PKCS1v15(),
                   hashes.SHA256())
    except InvalidSignature:
        return False
    # The signature file is itself the signed document: it must be the content member plus the signature.
    _remove_keeping_tail(sigs[0])
    return etree.tostring(sig_root.getroottree(), method="c14n", exclusive=True, with_comments=False) == canonical


def _remove_keeping_tail(el: Any) -> None:
    """Remove an element as the enveloped-signature transform does: the node goes, the text after it stays."""
    parent, tail = el.getparent(), el.tail
    if tail:
        prev = el.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(el)


def _pem_encoding() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding
    return Encoding.PEM


def _c14n(el: Any) -> bytes:
    el = etree.fromstring(etree.tostring(el), parser=etree.XMLParser(remove_blank_text=True, resolve_entities=False,
                                                                     no_network=True))
    return etree.tostring(el, method="c14n", exclusive=True)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
