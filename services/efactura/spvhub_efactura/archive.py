"""Reading ANAF's downloaded ZIPs as untrusted input: size, member-name and ratio checks, hardened XML
parsing (no DTD, no entities, no network) and XML-DSig verification against the certificate in the file."""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
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


class _NoResolver(etree.Resolver):
    """Answers every request for an external resource (DTD, entity, XInclude) with a refusal."""

    def resolve(self, url: str | None, pubid: str | None, context: Any) -> Any:
        raise HostileArchive(f"XML asked for an external resource ({str(url)[:100]!r})")


def _parser(keep_pis: bool = False) -> etree.XMLParser:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                             attribute_defaults=False, huge_tree=False, remove_pis=not keep_pis, collect_ids=False)
    parser.resolvers.add(_NoResolver())
    return parser


# A DTD (and so any entity) can only come through a declaration: refusing the markup wherever it is in the file
# means libxml2 never sees one, so never opens what it names. A comment or CDATA quoting the markup is refused
# too, which an invoice has no reason to do.
_DTD_MARKUP = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)", re.IGNORECASE)


def parse_xml(data: bytes, keep_pis: bool = False) -> Any:
    """Parse untrusted XML: any DTD or declaration, anywhere in the file, is refused before the parser runs
    (defusedxml's rule, over the whole file); the parser itself loads nothing, resolves nothing and refuses any
    external resource; a DTD that still reached the tree is refused after parsing."""
    if _DTD_MARKUP.search(data):
        raise HostileArchive("XML with a DTD or entity declarations is refused")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:4]:
        # UTF-16/32 would hide the markup from the byte scan above; e-Factura documents are UTF-8 (CIUS-RO)
        raise UnreadableArchive("XML not in UTF-8 or an ASCII-compatible encoding is not accepted")
    try:
        root = etree.fromstring(data, parser=_parser(keep_pis))
    except etree.XMLSyntaxError as e:
        raise UnreadableArchive(f"XML not well formed: {e}") from e
    doc = root.getroottree().docinfo
    if doc.internalDTD is not None or doc.externalDTD is not None or doc.doctype or doc.system_url:
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
    """The verdict on `semnatura_*.xml`. `status`: valid (a recognised shape verifies over exactly the content
    member, with a certificate valid at the message's creation, from a trusted signer) | valid_untrusted_signer
    (all of that, by a certificate not in the trusted list) | invalid | missing | error."""
    status: str
    detail: str = ""
    signer_subject: str | None = None
    signer_sha256: str | None = None
    trusted: bool | None = None
    shape: str | None = None  # detached (ANAF production) | enveloped (ANAF test environment)
    signer_serial: str | None = None


_C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
_EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
_RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
_RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
_SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"

_EXCLUSIVE = {_C14N_10: False, _EXC_C14N: True}  # canonicalization method -> exclusive?
_DIGESTS = {_SHA256: hashlib.sha256, _SHA512: hashlib.sha512}
# SHA-1 only for the detached production shape: it is what ANAF signs with there, and nowhere else accepted.
_DETACHED_METHODS: dict[str, Any] = {_RSA_SHA1: hashes.SHA1, _RSA_SHA256: hashes.SHA256}
_ENVELOPED_METHODS: dict[str, Any] = {_RSA_SHA256: hashes.SHA256, _RSA_SHA512: hashes.SHA512}


def _ds(name: str) -> str:
    return f"{{{DS_NS}}}{name}"


class _Refused(Exception):
    """The signature is not one of the two accepted shapes, or does not verify (the message says why)."""


def verify_signature(content: bytes, signature: bytes | None, trusted_sha256: list[str] | None = None,
                     content_root: Any = None, at: datetime | None = None) -> SignatureCheck:
    """Verify ANAF's signature of the content member, in one of its two genuine shapes and nothing else. Never
    raises. `content_root`: the content already parsed; `at`: the message's creation (`data_creare`), when the
    certificate must have been valid (ANAF's certificates expire; what they signed stays signed).

    - detached (production): the file is a lone `<Signature>`; its one `Reference URI=""` has no transforms and
      its DigestValue is the hash of the raw bytes of the content member; SignedInfo is canonicalized with c14n
      1.0 and signed RSA-SHA1.
    - enveloped (test environment): the file is a copy of the document with `<Signature>` as a child of its root;
      the one reference (enveloped-signature transform) digests the canonical content member; the copy was
      pretty-printed after signing, so SignedInfo is also tried without the whitespace between its elements, and
      the copy must equal the content member up to that whitespace.
    Both are checked directly (hash, canonicalize, RSA) with the certificate the file carries: a generic XML-DSig
    library reads the detached `URI=""` as "this file" and refuses SHA-1."""
    if not signature:
        return SignatureCheck("missing", "no semnatura_*.xml member")
    shape = cert = fp = subject = serial = None
    try:
        root = parse_xml(signature)
        if root.tag == _ds("Signature"):
            shape, sig = "detached", root
        else:
            sigs = list(root.iter(_ds("Signature")))
            if len(sigs) != 1 or sigs[0].getparent() is not root:
                raise _Refused("neither a detached signature nor one enveloped signature under the document root")
            shape, sig = "enveloped", sigs[0]
        cert, fp, subject, serial = _signer(sig)
        if not _intact(cert):
            raise _Refused("the self-signed certificate's own signature does not verify (altered certificate)")
        si, value, ref = _parts(sig)
        method = _alg(si.find(_ds("SignatureMethod")))
        c14n = _alg(si.find(_ds("CanonicalizationMethod")))
        if c14n not in _EXCLUSIVE:
            raise _Refused(f"SignedInfo canonicalization {c14n!r} not accepted")
        methods = _DETACHED_METHODS if shape == "detached" else _ENVELOPED_METHODS
        if method not in methods:
            raise _Refused(f"signature method {method!r} not accepted for the {shape} shape")
        digest_alg = _alg(ref.find(_ds("DigestMethod")))
        if digest_alg not in _DIGESTS:
            raise _Refused(f"digest method {digest_alg!r} not accepted")
        expected = _b64(ref.find(_ds("DigestValue")))
        if shape == "detached":
            if ref.find(_ds("Transforms")) is not None:
                raise _Refused("the detached reference must have no transforms")
            digest = _DIGESTS[digest_alg](content).digest()
        else:
            transforms = ref.find(_ds("Transforms"))
            algs = [] if transforms is None else [_alg(t) for t in transforms]
            if transforms is not None and any(t.tag != _ds("Transform") or len(t) for t in transforms):
                raise _Refused("unexpected transform parameters")
            if algs not in ([_ENVELOPED], [_ENVELOPED, _C14N_10], [_ENVELOPED, _EXC_C14N]):
                raise _Refused(f"transforms {algs} not accepted for the enveloped shape")
            # the document as signed, processing instructions included (the reader's parse drops them)
            doc = parse_xml(content, keep_pis=True)
            canonical = etree.tostring(doc.getroottree(), method="c14n", with_comments=False,
                                       exclusive=len(algs) == 2 and algs[1] == _EXC_C14N)
            digest = _DIGESTS[digest_alg](canonical).digest()
        if not hmac.compare_digest(digest, expected):
            raise _Refused("the digest does not match the content member")
        _verify_signed_info(cert, si, _b64(value), methods[method](), _EXCLUSIVE[c14n])
        if shape == "enveloped":
            _remove_keeping_tail(sig)
            doc = content_root if content_root is not None else parse_xml(content)
            if _loose_c14n(root) != _loose_c14n(doc):
                raise _Refused("the signed copy differs from the content member")
        when = at or datetime.now(UTC)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
            raise _Refused(f"certificate not valid at {when.isoformat()} (valid "
                           f"{cert.not_valid_before_utc.isoformat()} to {cert.not_valid_after_utc.isoformat()})")
    except _Refused as e:
        return SignatureCheck("invalid", str(e)[:500], subject, fp, None, shape, serial)
    except (HostileArchive, UnreadableArchive) as e:
        return SignatureCheck("invalid", f"signature file: {e}"[:500], subject, fp, None, shape, serial)
    except Exception as e:  # noqa: BLE001 - a malformed signature file must never break the archive
        return SignatureCheck("invalid", f"{type(e).__name__}: {str(e)[:300]}", subject, fp, None, shape, serial)
    trusted = fp.lower() in {t.lower().replace(":", "").strip() for t in trusted_sha256 or ()}
    return SignatureCheck("valid" if trusted else "valid_untrusted_signer",
                          "" if trusted else "signer certificate not in the trusted list",
                          subject, fp, trusted, shape, serial)


def _alg(el: Any) -> str | None:
    return None if el is None else el.get("Algorithm")


def _b64(el: Any) -> bytes:
    text = "".join((el.text or "").split()) if el is not None else ""
    if not text:
        raise _Refused("empty DigestValue, SignatureValue or X509Certificate")
    return _canonical_b64(text)


def _canonical_b64(text: str) -> bytes:
    """Base64 that decodes, and that is the one encoding of what it decodes to: the unused bits before `=` can
    differ without changing the bytes, and a changed byte of the file must never go unnoticed."""
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError as e:
        raise _Refused("DigestValue, SignatureValue or X509Certificate is not base64") from e
    if base64.b64encode(data).decode("ascii") != text:
        raise _Refused("base64 not in its canonical form")
    return data


def _parts(sig: Any) -> tuple[Any, Any, Any]:
    """SignedInfo, SignatureValue and the one Reference (with URI=""), each exactly once."""
    sis, values = sig.findall(_ds("SignedInfo")), sig.findall(_ds("SignatureValue"))
    if len(sis) != 1 or len(values) != 1:
        raise _Refused("a signature needs exactly one SignedInfo and one SignatureValue")
    si = sis[0]
    refs = si.findall(_ds("Reference"))
    if len(refs) != 1 or refs[0].get("URI") != "":
        raise _Refused('exactly one Reference with URI="" is accepted')
    for el in si.iter(_ds("CanonicalizationMethod"), _ds("SignatureMethod")):
        if len(el):
            raise _Refused(f"unexpected parameters under {etree.QName(el).localname}")
    return si, values[0], refs[0]


def _signer(sig: Any) -> tuple[Any, str, str, str]:
    certs = sig.findall(f"{_ds('KeyInfo')}/{_ds('X509Data')}/{_ds('X509Certificate')}")
    if len(certs) != 1:
        raise _Refused("the signature must carry exactly one X509Certificate")
    der = _b64(certs[0])
    try:
        return _certificate(der)
    except ValueError as e:
        raise _Refused(f"unreadable certificate: {e}") from e


@lru_cache(maxsize=64)
def _intact(cert: Any) -> bool:
    """A self-issued certificate (the emulator's, ANAF's test one) carries its own proof: its signature must verify
    with its own key. A CA-issued one (ANAF's production signer) cannot be checked without the CA: the trusted
    fingerprints pin it, so an altered copy is at best `valid_untrusted_signer`."""
    if cert.issuer != cert.subject:
        return True
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:  # noqa: BLE001 - wrong signature, unsupported algorithm: not intact
        return False
    return True


def _verify_signed_info(cert: Any, si: Any, value: bytes, algorithm: Any, exclusive: bool) -> None:
    """RSA over the canonical SignedInfo; again with the whitespace between its elements removed (a copy that
    was pretty-printed after signing) before giving up."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise _Refused("the signer key is not RSA")
    for attempt in range(2):
        if attempt:
            if not _strip_layout(si):
                break
        try:
            key.verify(value, etree.tostring(si, method="c14n", exclusive=exclusive, with_comments=False),
                       padding.PKCS1v15(), algorithm)
            return
        except InvalidSignature:
            continue
    raise _Refused("SignatureValue does not verify with the certificate's key")


def _strip_layout(el: Any) -> bool:
    """Remove whitespace-only text between elements (not inside leaves) in place; True when something changed."""
    changed = False
    for node in el.iter():
        if len(node) and node.text is not None and not node.text.strip():
            node.text, changed = None, True
        for child in node:
            if child.tail is not None and not child.tail.strip():
                child.tail, changed = None, True
    return changed


def _loose_c14n(el: Any) -> bytes:
    """c14n of a copy of the document without whitespace between elements (for comparing a pretty-printed copy)."""
    copy = etree.fromstring(etree.tostring(el), parser=_parser())
    _strip_layout(copy)
    return etree.tostring(copy, method="c14n", exclusive=True, with_comments=False)


@lru_cache(maxsize=64)
def _certificate(der: bytes) -> tuple[Any, str, str, str]:
    """(certificate, SHA-256 fingerprint, subject, serial in hex) of a DER certificate. ANAF signs every message
    with the same few certificates: parse each once per process, not once per invoice."""
    cert = x509.load_der_x509_certificate(der)
    return (cert, cert.fingerprint(hashes.SHA256()).hex(), cert.subject.rfc4514_string(),
            format(cert.serial_number, "x"))


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


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
