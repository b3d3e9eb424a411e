"""ANAF's error texts explained: each message of an error report (`mesajEroriFactuta:v1`), of `validare` or of an
upload refusal is parsed into a rule code, the field it is about and a readable explanation in Romanian and
English from a catalogue of common CIUS-RO (BR-RO), EN 16931 (BR, BR-CO, BR-S...) and ANAF (R6.1, R_BT...) rules.
Unknown codes fall back to ANAF's own text. Pure; no I/O.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from spvhub_einvoice.catalogue import CATALOGUE  # shared with the offline validator


@dataclass(frozen=True)
class Explained:
    code: str | None  # BR-RO-110, BR-CO-10, R6.1, cvc-elt.1.a, ... (None: no code found)
    field: str | None  # BT-xx / BG-xx, or the XML path ANAF names
    message: str  # ANAF's text, whitespace normalised
    explanation_ro: str
    explanation_en: str
    severity: str = "error"  # error | warning
    known: bool = False  # the code is in the catalogue

    def as_dict(self) -> dict[str, str | bool | None]:
        return asdict(self)


_BRACKET = re.compile(r"\[([A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+)\]")
_RULE = re.compile(r"eroare regula:\s*([A-Za-z0-9_.\-]+)\s*:")
_CVC = re.compile(r"\b(cvc-[a-zA-Z0-9.\-]+)")
_BT = re.compile(r"\b(B[TG]-\d+)\b")
_SECTIONS = re.compile(r"(?:^|sectiune\s+)([A-Za-z]+)\s*\(\d+\)")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def _path(text: str) -> str | None:
    """ANAF's "E: AccountingSupplierParty (1) sectiune Party (1) sectiune CompanyID (1) eroare ..." -> a path."""
    head = re.sub(r"^[EW]:\s*", "", text.split("eroare", 1)[0].strip())
    if "sectiune" not in head:
        return None
    parts = _SECTIONS.findall(head)
    return "/".join(parts) or None


def explain(message: str) -> Explained:
    """One ANAF error text -> code, field and explanation (RO + EN); unknown codes keep ANAF's wording."""
    text = _norm(message)
    severity = "warning" if text.startswith("W:") else "error"
    code: str | None = None
    m = _BRACKET.search(text) or _RULE.search(text) or _CVC.search(text)
    if m:
        code = m.group(1)
    if code and code.startswith("cvc-"):
        lookup = "SCHEMA"
    elif code is None and "Fisierul transmis nu este valid" in text:
        lookup, code = "SCHEMA", "SCHEMA"
    else:
        lookup = code or ""
    entry = CATALOGUE.get(lookup)
    bt = _BT.search(text)
    # the catalogue knows which term a rule is about; the text may name the condition's term first (BR-RO-110)
    field = _path(text) or (entry[0] if entry and entry[0] else None) or (bt.group(1) if bt else None)
    if entry is not None:
        return Explained(code, field, text, entry[1], entry[2], severity, True)
    detail = re.sub(r"^[EW]:\s*", "", text)
    return Explained(code, field, text, f"Mesaj ANAF: {detail}",
                     f"ANAF's message (not in our catalogue, in Romanian): {detail}", severity, False)


def explain_all(messages: list[str]) -> list[dict[str, str | bool | None]]:
    return [explain(m).as_dict() for m in messages if m and m.strip()]
