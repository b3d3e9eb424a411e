"""Romanian CIF/CUI control digit: validation and generation of valid codes."""

from __future__ import annotations

import random

_KEY = "753217532"


def control_digit(body: str) -> int:
    """Control digit for the digits before it (key 753217532 aligned from the right)."""
    if not body.isdigit() or not 1 <= len(body) <= 9:
        raise ValueError(f"CIF body must be 1-9 digits: {body!r}")
    key = _KEY[-len(body):]
    total = sum(int(d) * int(k) for d, k in zip(body, key))
    digit = total * 10 % 11
    return 0 if digit == 10 else digit


def is_valid_cif(value: str) -> bool:
    """True for a 2-10 digit CIF whose last digit is the control digit."""
    text = value.strip().upper().removeprefix("RO")
    if not text.isdigit() or not 2 <= len(text) <= 10:
        return False
    return control_digit(text[:-1]) == int(text[-1])


def make_cif(body: int | str) -> str:
    """Append the control digit to a body of 1-9 digits."""
    text = str(body)
    return f"{text}{control_digit(text)}"


def random_cif(rng: random.Random, digits: int = 8) -> str:
    """A valid CIF of `digits` digits (including the control digit)."""
    first = rng.randint(1, 9)
    rest = "".join(str(rng.randint(0, 9)) for _ in range(digits - 2))
    return make_cif(f"{first}{rest}")


# CNP: a natural person's personal numeric code, an e-Factura taxpayer id since June 2026 (anaf-api.md §12)
_CNP_KEY = "279146358279"


def cnp_control_digit(body: str) -> int:
    """Control digit of a CNP's first 12 digits: key 279146358279, sum mod 11 (10 -> 1)."""
    if not body.isdigit() or len(body) != 12:
        raise ValueError(f"CNP body must be 12 digits: {body!r}")
    digit = sum(int(d) * int(k) for d, k in zip(body, _CNP_KEY)) % 11
    return 1 if digit == 10 else digit


def is_valid_cnp(value: str) -> bool:
    """True for 13 digits whose last one is the CNP control digit."""
    text = value.strip()
    return len(text) == 13 and text.isdigit() and cnp_control_digit(text[:12]) == int(text[12])


def is_valid_taxpayer(value: str) -> bool:
    """An e-Factura taxpayer id: a company's CIF or a natural person's CNP."""
    return is_valid_cnp(value) or is_valid_cif(value)
