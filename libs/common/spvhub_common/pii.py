"""Natural persons identified by CNP on a platform where every company is known by one key.

Since June 2026 an e-Factura issuer may be a natural person identified by a 13-digit CNP (a personal code that
encodes sex and birth date). The platform's company key travels everywhere: URLs (so gateway access logs), Kafka
keys and payloads, every service's tables, notifications. A CNP must not: so a CNP-identified company is known on
the platform by a *person key*, `PF` + 12 base32 characters taken from HMAC-SHA256(CNP) under the platform's PII
secret. It fits every `cif` column (16), never looks like a CIF or a CNP, and is:
- deterministic: any service that meets the CNP in ANAF's data (a rights inventory, a message list) finds the same
  company without asking anyone;
- not reversible without the secret: a plain hash is, since there are only about 10^9 possible CNPs.
The clear CNP is needed only for ANAF calls (`cif=` of listaMesaje, upload) and to show it to the company's own
members; it travels *sealed* (AES-256-GCM, bound to its key) and is stored sealed. The secret is one per installation
(`SPVHUB_PII_SECRET`) and must never change once companies exist: their keys are derived from it.

- `PersonIds(secret).key_of(cnp)`, `.seal(cnp)`, `.unseal(sealed, key)`, `.company_key(raw)` (a CIF, a CNP or a key
  typed by a person, as the platform's key);
- `parse_company_id(raw)`: a company id in a URL or a query (a CIF or a person key; a clear CNP is refused there,
  because URLs are logged);
- `is_person_key(value)`, `display_id(key, cnp, may_see)`.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from spvhub_common.ids import InvalidTaxId, mask_cnp, normalize_cif, parse_tax_id

PERSON_KEY_PREFIX = "PF"
PERSON_KEY = re.compile(r"^PF[A-Z2-7]{12}$")
# The repository's public value: refused outside dev/test like every other placeholder secret.
DEV_PII_SECRET = "dev-only-spvhub-pii-secret"


def is_person_key(value: object) -> bool:
    """True for a person key (`PF` + 12 base32 characters), the platform's id of a CNP-identified company."""
    return isinstance(value, str) and bool(PERSON_KEY.match(value))


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"spvhub-pii/" + purpose).derive(secret)


class PersonIds:
    """Person keys and sealed CNPs under one installation secret."""

    def __init__(self, secret: str | bytes) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        if len(raw) < 16:
            raise ValueError("the PII secret must be at least 16 bytes")
        self._mac_key = _derive(raw, b"person-key")
        self._seal_key = _derive(raw, b"seal")

    @classmethod
    def from_settings(cls, settings: object) -> PersonIds:
        """From a `ServiceSettings` (its `pii_secret`)."""
        return cls(settings.pii_secret.get_secret_value())  # type: ignore[attr-defined]

    def key_of(self, cnp: str) -> str:
        """The person key of a CNP (digits only, as `parse_tax_id` returns it)."""
        digest = hmac.new(self._mac_key, cnp.encode(), hashlib.sha256).digest()
        return PERSON_KEY_PREFIX + base64.b32encode(digest).decode()[:12]

    def key_of_anaf_id(self, value: str) -> str:
        """The platform key of an id found in ANAF's data: a 13-digit CNP becomes its person key, anything else is
        returned as it is (ANAF's own data is read, never refused)."""
        text = "".join(value.split())
        if len(text) == 13 and text.isdigit():
            try:
                tax_id = parse_tax_id(text)
            except InvalidTaxId:
                return text
            if tax_id.kind == "cnp":
                return self.key_of(tax_id.value)
        return text

    def seal(self, cnp: str) -> str:
        """The CNP encrypted and bound to its person key (text, safe for JSON, Kafka and a VARCHAR column)."""
        nonce = os.urandom(12)
        ct = AESGCM(self._seal_key).encrypt(nonce, cnp.encode(), self.key_of(cnp).encode())
        return "s1." + base64.urlsafe_b64encode(nonce + ct).decode().rstrip("=")

    def unseal(self, sealed: str, key: str) -> str:
        """The clear CNP of `key`; raises ValueError when `sealed` is not the CNP of that key (tampered, swapped)."""
        if not sealed.startswith("s1."):
            raise ValueError("unknown sealed format")
        body = sealed[3:]
        blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        try:
            cnp = AESGCM(self._seal_key).decrypt(blob[:12], blob[12:], key.encode()).decode()
        except Exception as e:  # noqa: BLE001 - InvalidTag and friends: one answer, never the plaintext
            raise ValueError("the sealed CNP does not belong to this key") from e
        if self.key_of(cnp) != key:
            raise ValueError("the sealed CNP does not belong to this key")
        return cnp

    def company_key(self, raw: object) -> str:
        """A company id typed by a person (a form, a request body): a CIF (normalised), a CNP (its person key) or a
        person key. Raises `InvalidTaxId` (422) with the `cif_*` codes of `normalize_cif`."""
        text = "".join(str(raw if raw is not None else "").split())
        if is_person_key(text.upper()):
            return text.upper()
        tax_id = parse_tax_id(raw)
        return self.key_of(tax_id.value) if tax_id.kind == "cnp" else tax_id.value


def parse_company_id(raw: object) -> str:
    """A company id in a URL or a query: a CIF (normalised) or a person key. A clear CNP is refused with 422
    `cnp_in_url`: URLs end up in access logs and browser histories; the company's key is used there instead."""
    text = "".join(str(raw if raw is not None else "").split())
    if is_person_key(text.upper()):
        return text.upper()
    if len(text) == 13 and text.isdigit():
        raise InvalidTaxId(
            "A personal numeric code (CNP) is not used in addresses: use the company's key (PF…) shown in spvhub.",
            code="cnp_in_url", details={},
            messages={"ro": "Codul numeric personal (CNP) nu se folosește în adrese: folosiți cheia firmei (PF…) "
                            "afișată în spvhub."})
    return normalize_cif(raw)


def display_id(key: str, cnp: str | None, *, may_see: bool) -> str:
    """What a person is shown as a company's id: the CIF; for a CNP issuer, the CNP to its own members and masked
    (`1********0008`) to everyone else; the key when the CNP is not known here."""
    if not is_person_key(key):
        return key
    if cnp is None:
        return key
    return cnp if may_see else mask_cnp(cnp)
