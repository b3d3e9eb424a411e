"""Keys of the emulator: RS512 OAuth JWTs (JWKS) and ANAF's XML-DSig of downloaded messages, in its two shapes
(detached, production; enveloped and pretty-printed after signing, test environment)."""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

KID = "anaf_2023_2024"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"


def _read(name: str) -> bytes:
    return resources.files("anaf_emulator").joinpath("keys", name).read_bytes()


@lru_cache(maxsize=1)
def jwt_private_key() -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(_read("jwt_signing_key.pem"), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@lru_cache(maxsize=1)
def jwt_public_pem() -> bytes:
    return jwt_private_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@lru_cache(maxsize=1)
def jwks() -> dict[str, Any]:
    numbers = jwt_private_key().public_key().public_numbers()
    return {
        "keys": [
            {
                "kty": "RSA",
                "use": "sig",
                "alg": "RS512",
                "kid": KID,
                "n": _b64url_uint(numbers.n),
                "e": _b64url_uint(numbers.e),
            }
        ]
    }


def encode_jwt(claims: dict[str, Any]) -> str:
    """An RS512 JWT whose header segment is pretty-printed JSON, as ANAF's tokens are."""
    header = json.dumps({"alg": "RS512", "kid": KID}, indent=2).encode()
    payload = json.dumps(claims, separators=(",", ":")).encode()
    signing_input = f"{_b64url(header)}.{_b64url(payload)}".encode("ascii")
    signature = jwt_private_key().sign(signing_input, padding.PKCS1v15(), hashes.SHA512())
    return f"{signing_input.decode('ascii')}.{_b64url(signature)}"


def decode_jwt(token: str) -> dict[str, Any] | None:
    """Verify the signature only (time checks use the emulator clock); None when invalid."""
    try:
        claims = jwt.decode(
            token,
            jwt_public_pem(),
            algorithms=["RS512"],
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False},
        )
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims, dict) else None


@lru_cache(maxsize=1)
def _xmldsig_key() -> rsa.RSAPrivateKey:
    # loading a PEM key is slow (tens of ms: key consistency checks), so load it once
    key = serialization.load_pem_private_key(_read("xmldsig_key.pem"), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@lru_cache(maxsize=1)
def signing_cert_pem() -> bytes:
    return _read("xmldsig_cert.pem")


@lru_cache(maxsize=1)
def signing_cert() -> x509.Certificate:
    return x509.load_pem_x509_certificate(signing_cert_pem())


C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHAPES = ("production", "test")


def _ds(name: str) -> str:
    return f"{{{DS_NS}}}{name}"


def _sub(parent: Any, name: str, text: str | None = None, **attrs: str) -> Any:
    el = etree.SubElement(parent, _ds(name), attrs)
    el.text = text
    return el


def _b64_lines(data: bytes) -> str:
    """Base64 in 76-character lines joined by CR LF, as ANAF's Java signer writes them (`&#13;` in the file)."""
    text = base64.b64encode(data).decode("ascii")
    return "\r\n".join(text[i:i + 76] for i in range(0, len(text), 76))


def _signature(signed_info: Any, key: rsa.RSAPrivateKey, cert: x509.Certificate, algorithm: Any,
               exclusive: bool) -> Any:
    """Complete a `<Signature>` around its SignedInfo: the value over the canonical SignedInfo, then KeyInfo."""
    sig = signed_info.getparent()
    canonical = etree.tostring(signed_info, method="c14n", exclusive=exclusive, with_comments=False)
    _sub(sig, "SignatureValue", _b64_lines(key.sign(canonical, padding.PKCS1v15(), algorithm)))
    data = _sub(_sub(sig, "KeyInfo"), "X509Data")
    _sub(data, "X509SubjectName", cert.subject.rfc4514_string())
    _sub(data, "X509Certificate", _b64_lines(cert.public_bytes(serialization.Encoding.DER)))
    return sig


def sign_detached(member: bytes, key: rsa.RSAPrivateKey | None = None, cert: x509.Certificate | None = None
                  ) -> bytes:
    """ANAF's production `semnatura_<index>.xml`: a lone `<Signature>` whose one reference (`URI=""`, no
    transforms) is the SHA-256 of the raw member bytes; SignedInfo in c14n 1.0, signed RSA-SHA1."""
    key, cert = key or _xmldsig_key(), cert or signing_cert()
    sig = etree.Element(_ds("Signature"), nsmap={None: DS_NS})
    si = _sub(sig, "SignedInfo")
    _sub(si, "CanonicalizationMethod", Algorithm=C14N_10)
    _sub(si, "SignatureMethod", Algorithm=RSA_SHA1)
    ref = _sub(si, "Reference", URI="")
    _sub(ref, "DigestMethod", Algorithm=SHA256)
    _sub(ref, "DigestValue", base64.b64encode(hashlib.sha256(member).digest()).decode("ascii"))
    _signature(si, key, cert, hashes.SHA1(), exclusive=False)
    return etree.tostring(sig, xml_declaration=True, encoding="UTF-8")


def sign_enveloped(member: bytes, key: rsa.RSAPrivateKey | None = None, cert: x509.Certificate | None = None,
                   pretty: bool = True) -> bytes:
    """ANAF's test-environment `semnatura_<index>.xml`: a copy of the document with an enveloped `<Signature>`
    (exc-c14n SignedInfo, RSA-SHA256, one reference `URI=""` with the enveloped-signature transform only, so the
    digest is over the c14n 1.0 of the document) as last child of the root; then, as ANAF's copy is,
    pretty-printed after signing (whitespace added between elements, SignedInfo included)."""
    key, cert = key or _xmldsig_key(), cert or signing_cert()
    root = etree.fromstring(member, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    digest = hashlib.sha256(etree.tostring(root.getroottree(), method="c14n", with_comments=False)).digest()
    sig = etree.SubElement(root, _ds("Signature"), nsmap={None: DS_NS})
    si = _sub(sig, "SignedInfo")
    _sub(si, "CanonicalizationMethod", Algorithm=EXC_C14N)
    _sub(si, "SignatureMethod", Algorithm=RSA_SHA256)
    ref = _sub(si, "Reference", URI="")
    _sub(_sub(ref, "Transforms"), "Transform", Algorithm=ENVELOPED)
    _sub(ref, "DigestMethod", Algorithm=SHA256)
    _sub(ref, "DigestValue", base64.b64encode(digest).decode("ascii"))
    _signature(si, key, cert, hashes.SHA256(), exclusive=True)
    signed = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    if not pretty:
        return signed
    again = etree.fromstring(signed, parser=etree.XMLParser(remove_blank_text=True, resolve_entities=False,
                                                               no_network=True))
    return etree.tostring(again, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def sign_document(xml: bytes, shape: str = "production") -> bytes:
    """`semnatura_<index>.xml` for a message member in one of ANAF's two shapes (production by default)."""
    if shape not in SHAPES:
        raise ValueError(f"signature shape {shape!r} not in {SHAPES}")
    return sign_detached(xml) if shape == "production" else sign_enveloped(xml)


def _strip_layout(el: Any) -> None:
    for node in el.iter():
        if len(node) and node.text is not None and not node.text.strip():
            node.text = None
        for child in node:
            if child.tail is not None and not child.tail.strip():
                child.tail = None


def verify_signature(document: bytes, signature_file: bytes) -> bool:
    """True when `signature_file` is an emulator signature, in either shape, over exactly `document`."""
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        root = etree.fromstring(signature_file, parser=parser)
        sig = root if root.tag == _ds("Signature") else root.find(_ds("Signature"))
        if sig is None:
            return False
        si = sig.find(_ds("SignedInfo"))
        value = base64.b64decode("".join((sig.findtext(_ds("SignatureValue")) or "").split()))
        ref = si.find(_ds("Reference"))
        expected = base64.b64decode("".join((ref.findtext(_ds("DigestValue")) or "").split()))
        if sig is root:
            ok_digest = hashlib.sha256(document).digest() == expected
            algorithm, exclusive = hashes.SHA1(), False
        else:
            original = etree.fromstring(document, parser=parser)
            canonical = etree.tostring(original.getroottree(), method="c14n", with_comments=False)
            root.remove(sig)
            copy, doc = etree.fromstring(etree.tostring(root)), etree.fromstring(etree.tostring(original))
            _strip_layout(copy)
            _strip_layout(doc)
            ok_digest = hashlib.sha256(canonical).digest() == expected and \
                etree.tostring(copy, method="c14n") == etree.tostring(doc, method="c14n")
            algorithm, exclusive = hashes.SHA256(), True
            _strip_layout(si)
        if not ok_digest:
            return False
        signing_cert().public_key().verify(  # type: ignore[union-attr]
            value, etree.tostring(si, method="c14n", exclusive=exclusive), padding.PKCS1v15(), algorithm)
    except Exception:  # noqa: BLE001 - any parse or crypto failure means "not valid"
        return False
    return True
