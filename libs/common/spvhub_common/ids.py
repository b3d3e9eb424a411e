"""Romanian tax ids: the one CIF/CNP normaliser of the platform.

- `normalize_cif(raw)` is the validator for a company's CIF typed by a person or sent to ANAF: spaces and an optional
  `RO` (any case) are dropped, 2..10 digits remain, the control digit is checked, leading zeros are dropped; anything
  else raises `InvalidTaxId` (422) with a stable code and a Romanian + English message.
- `parse_tax_id(raw)` also accepts a natural person's CNP (13 digits with its control digit) and says which it was.
- `strip_ro(raw)` is NOT a validator: it only drops spaces and a leading `RO`, for reading what ANAF writes (the
  `detalii` of a message, an inventory field) where a foreign or odd id must be kept as it is, never refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from spvhub_common.errors import AppError

CIF_KEY = "753217532"  # weights of the CIF control digit, aligned from the right
CNP_KEY = "279146358279"  # weights of the CNP control digit

TaxIdKind = Literal["cif", "cnp"]


class InvalidTaxId(AppError):
    """A CIF/CNP that is not one; `code` is one of `cif_empty`, `cif_not_numeric`, `cif_bad_length`,
    `cif_bad_control_digit` (`message` is English, `messages["ro"]` Romanian)."""

    status = 422
    code = "invalid_cif"


def _invalid(code: str, raw: object, en: str, ro: str) -> InvalidTaxId:
    return InvalidTaxId(en, code=code, details={"cif": raw}, messages={"ro": ro})


def _compact(raw: object) -> str:
    """Without any whitespace and without a leading `RO` (any case)."""
    text = "".join(str(raw if raw is not None else "").split())
    return text[2:] if text[:2].upper() == "RO" else text


def cif_control_digit(body: str) -> int:
    """Control digit of a CIF body (1..9 digits): key 753217532 aligned from the right, sum*10 mod 11 (10 -> 0)."""
    key = CIF_KEY[-len(body):]
    total = sum(int(d) * int(k) for d, k in zip(body, key, strict=True))
    digit = total * 10 % 11
    return 0 if digit == 10 else digit


def cnp_control_digit(body: str) -> int:
    """Control digit of the first 12 digits of a CNP: key 279146358279, sum mod 11 (10 -> 1)."""
    digit = sum(int(d) * int(k) for d, k in zip(body, CNP_KEY, strict=True)) % 11
    return 1 if digit == 10 else digit


def normalize_cif(raw: object) -> str:
    """`" RO 12 345 678 "` -> `"12345678"`; raises `InvalidTaxId` (422) with a stable code."""
    text = _compact(raw)
    if not text:
        raise _invalid("cif_empty", raw, "Enter the company's CIF (with or without RO).",
                       "Introduceți CIF-ul firmei (cu sau fără RO).")
    if not text.isdigit():
        raise _invalid("cif_not_numeric", raw,
                       f"CIF {raw!r} must contain only digits after the optional RO prefix.",
                       f"CIF-ul {raw!r} trebuie să conțină doar cifre după prefixul opțional RO.")
    if not 2 <= len(text) <= 10:
        raise _invalid("cif_bad_length", raw, f"CIF {raw!r} must have between 2 and 10 digits.",
                       f"CIF-ul {raw!r} trebuie să aibă între 2 și 10 cifre.")
    expected = cif_control_digit(text[:-1])
    if expected != int(text[-1]):
        raise _invalid("cif_bad_control_digit", raw,
                       f"CIF {raw!r} is not valid: its last digit (control digit) should be {expected}. "
                       "Check for a typing mistake.",
                       f"CIF-ul {raw!r} nu este valid: ultima cifră (cifra de control) ar trebui să fie {expected}. "
                       "Verificați dacă nu e o greșeală de tastare.")
    return text.lstrip("0") or text


def is_valid_cif(raw: object) -> bool:
    try:
        normalize_cif(raw)
    except InvalidTaxId:
        return False
    return True


def valid_cif(seed: int | str) -> str:
    """A valid CIF made of the digits of `seed` (1..9 digits) and its control digit: test data and fixtures."""
    body = str(seed).lstrip("0") or "1"
    if not body.isdigit() or len(body) > 9:
        raise ValueError(f"seed {seed!r} must be 1..9 digits")
    if len(body) == 1:
        body = "1" + body  # a CIF has at least 2 digits with its control digit; keep it unambiguous
    return body + str(cif_control_digit(body))


def strip_ro(raw: object) -> str:
    """What ANAF writes, read leniently: whitespace and a leading `RO` dropped, nothing checked (never raises)."""
    return _compact(raw)


@dataclass(frozen=True)
class TaxId:
    """A checked Romanian tax id: a company's CIF or a natural person's CNP (digits only)."""

    kind: TaxIdKind
    value: str

    def __str__(self) -> str:
        return self.value


def parse_tax_id(raw: object) -> TaxId:
    """A CNP when `raw` is 13 digits with a valid CNP control digit, else a CIF by `normalize_cif` rules."""
    text = _compact(raw)
    if len(text) == 13 and text.isdigit():
        if text[0] == "0":
            # no CNP starts with 0 (its first digit is sex and century); 13 zeros is the B2C buyer placeholder
            raise _invalid("cif_bad_control_digit", raw,
                           "This 13-digit code is not a CNP: a CNP never starts with 0 (13 zeros stand for an "
                           "unidentified buyer).",
                           "Codul de 13 cifre nu este un CNP: un CNP nu începe cu 0 (13 zerouri înseamnă un "
                           "cumpărător neidentificat).")
        if cnp_control_digit(text[:12]) != int(text[12]):
            raise _invalid("cif_bad_control_digit", raw,
                           "This 13-digit code is not a valid CNP: its control digit does not match.",
                           "Codul de 13 cifre nu este un CNP valid: cifra de control nu se potrivește.")
        return TaxId("cnp", text)
    return TaxId("cif", normalize_cif(raw))


def mask_cnp(value: str) -> str:
    """A CNP for display and logs: the first digit and the last four kept, the birth date between them hidden
    (`1********0008`); anything shorter than 8 characters keeps only its first."""
    text = "".join(str(value).split())
    if len(text) < 8:
        return text[:1] + "*" * max(len(text) - 1, 0)
    return text[0] + "*" * (len(text) - 5) + text[-4:]
