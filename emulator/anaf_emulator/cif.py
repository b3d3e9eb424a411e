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
