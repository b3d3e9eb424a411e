"""Keys of the emulator: RS512 OAuth JWTs (JWKS) and the enveloped XML-DSig of downloaded messages."""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from signxml import DigestAlgorithm, SignatureMethod, XMLSigner, XMLVerifier
from signxml.algorithms import CanonicalizationMethod

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


def sign_document(xml: bytes) -> bytes:
    """The same document with an enveloped XML-DSig (exc-c14n, rsa-sha256, sha256) as last child."""
    root = etree.fromstring(xml, parser=etree.XMLParser(remove_blank_text=False, resolve_entities=False))
    signer = XMLSigner(
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signer.namespaces = {None: DS_NS}
    signed = signer.sign(root, key=_xmldsig_key(), cert=signing_cert_pem().decode("ascii"))
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def verify_signature(document: bytes, signature_file: bytes) -> bool:
    """True when `signature_file` carries a valid emulator signature over exactly `document`."""
    try:
        result = XMLVerifier().verify(
            signature_file, x509_cert=signing_cert_pem().decode("ascii"), expect_references=1
        )
        parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False)
        signed = etree.fromstring(etree.tostring(result.signed_xml), parser=parser)
        for sig in signed.findall(f".//{{{DS_NS}}}Signature"):
            sig.getparent().remove(sig)
        original = etree.fromstring(document, parser=parser)
    except Exception:  # noqa: BLE001 - any parse or crypto failure means "not valid"
        return False
    def canon(el: Any) -> bytes:
        return etree.tostring(el, method="c14n", exclusive=True)

    return canon(signed) == canon(original)
