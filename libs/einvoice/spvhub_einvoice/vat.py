"""Romanian VAT rates by date, checked on the standard-rated (S) lines, allowances/charges and breakdown of a UBL
document: 19/9/5 % until 31 Jul 2025; 21/11 % from 1 Aug 2025 (Law 141/2025), with the 9 % housing rate kept until
31 Jul 2026. ANAF's rules do not check rates, so these are warnings (the project's own rule ids), never refusals."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spvhub_einvoice.validator import Finding

NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
RATES_2025_08 = date(2025, 8, 1)
HOUSING_9_UNTIL = date(2026, 7, 31)  # last day the transitional 9 % housing rate applies
RULE_UNKNOWN_RATE = "SPVHUB-VAT-01"
RULE_HOUSING_ENDED = "SPVHUB-VAT-02"


@dataclass(frozen=True)
class Rates:
    standard: Decimal
    reduced: tuple[Decimal, ...]

    @property
    def all(self) -> tuple[Decimal, ...]:
        return (self.standard, *self.reduced)


def rates_on(day: date) -> Rates:
    """The VAT rates in force on `day` (the invoice's tax point or issue date)."""
    if day < RATES_2025_08:
        return Rates(Decimal(19), (Decimal(9), Decimal(5)))
    if day <= HOUSING_9_UNTIL:
        return Rates(Decimal(21), (Decimal(11), Decimal(9)))
    return Rates(Decimal(21), (Decimal(11),))


def _fmt(p: Decimal) -> str:
    return f"{p.normalize():f}"


def _date(text: str | None) -> date | None:
    try:
        return date.fromisoformat((text or "").strip())
    except ValueError:
        return None


_PATHS = (
    ("cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory", "/cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory"),
    ("cac:AllowanceCharge/cac:TaxCategory", "/cac:AllowanceCharge/cac:TaxCategory"),
    ("cac:InvoiceLine/cac:Item/cac:ClassifiedTaxCategory", "/cac:InvoiceLine/cac:Item/cac:ClassifiedTaxCategory"),
    ("cac:CreditNoteLine/cac:Item/cac:ClassifiedTaxCategory",
     "/cac:CreditNoteLine/cac:Item/cac:ClassifiedTaxCategory"),
)


def check(root: Any) -> list[Finding]:
    """Warnings for S-category percentages that were not a Romanian rate on the invoice's date."""
    from spvhub_einvoice.validator import Finding

    day = _date(root.findtext("cbc:TaxPointDate", namespaces=NS)) or _date(root.findtext("cbc:IssueDate",
                                                                                         namespaces=NS))
    if day is None:
        return []
    rates = rates_on(day)
    seen: dict[Decimal, str] = {}
    local = root.tag.split("}")[-1]
    for rel, path in _PATHS:
        for cat in root.iterfind(rel, NS):
            if (cat.findtext("cbc:ID", namespaces=NS) or "").strip() != "S":
                continue
            try:
                pct = Decimal((cat.findtext("cbc:Percent", namespaces=NS) or "").strip())
            except InvalidOperation:
                continue  # BR-S-05 / the schema answer for a missing or broken percentage
            if pct > 0 and pct not in rates.all:
                seen.setdefault(pct, f"/{local}{path}")
    out: list[Finding] = []
    allowed = ", ".join(f"{_fmt(r)} %" for r in rates.all)
    for pct, path in seen.items():
        if pct == Decimal(9) and day > HOUSING_9_UNTIL:
            code = RULE_HOUSING_ENDED
            ro = (f"Cota de TVA de 9 % (tranzitorie, pentru locuințe) s-a aplicat doar până la 31.07.2026; la data "
                  f"facturii ({day.isoformat()}) cotele sunt {allowed}.")
            en = (f"The 9 % VAT rate (transitional, for housing) applied only until 31 Jul 2026; on the invoice's date "
                  f"({day.isoformat()}) the rates are {allowed}.")
        else:
            code = RULE_UNKNOWN_RATE
            era = ("începând cu 1 august 2025 cota standard este 21 % și cea redusă 11 % (9 % pentru locuințe până "
                   "la 31.07.2026)" if day >= RATES_2025_08 else "până la 31 iulie 2025 cotele erau 19 %, 9 % și 5 %")
            era_en = ("from 1 Aug 2025 the standard rate is 21 % and the reduced one 11 % (9 % for housing until "
                      "31 Jul 2026)" if day >= RATES_2025_08 else "until 31 Jul 2025 the rates were 19 %, 9 % and 5 %")
            ro = (f"Cota de TVA {_fmt(pct)} % (categoria S) nu este o cotă din România la data facturii "
                  f"({day.isoformat()}): {era}.")
            en = (f"VAT rate {_fmt(pct)} % (category S) is not a Romanian rate on the invoice's date "
                  f"({day.isoformat()}): {era_en}.")
        out.append(Finding(code=code, field=path, message=f"W: {code}: {ro}", explanation_ro=ro, explanation_en=en,
                           severity="warning", source="spvhub", business_term="BT-119"))
    return out
