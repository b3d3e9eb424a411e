"""Which e-Factura route a document is filed through, read from the document itself (pure, no I/O).

- B2C (`uploadb2c`, mandatory for B2C since 31 March 2025): the buyer is a natural person - identified by a CNP (13
  digits with a valid control digit), by ANAF's placeholder `0000000000000` (13 zeros) when the CNP is not known, or,
  for a buyer in Romania, by no tax id at all (a customer number is not one: a Romanian tax id is digits).
- `extern=DA` (anaf-api.md §2.1): the buyer is outside Romania and has no Romanian tax id. A buyer not established in
  Romania but registered for VAT here (a `RO…` VAT id) is filed like any Romanian buyer, without `extern` (in force
  since 1 January 2026, anaf-api.md §12).
- Self-billing (`autofactura`): the buyer files in its own name, so it is a business: never B2C.

The caller may still say `b2c` / `extern`; when what it says contradicts the document, the submission is refused
(nothing stored, nothing sent) rather than filed through the wrong route.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from spvhub_common.ids import cnp_control_digit, strip_ro

from spvhub_efactura.submissions import errors

CNP_PLACEHOLDER = "0000000000000"


class RouteReason(StrEnum):
    BUYER_CNP = "buyer_cnp"                          # B2C: the buyer is identified by a CNP
    BUYER_PLACEHOLDER = "buyer_placeholder"          # B2C: 13 zeros, the CNP not given
    BUYER_WITHOUT_TAX_ID = "buyer_without_tax_id"    # B2C: a buyer in Romania with no tax id
    BUYER_TAX_ID = "buyer_tax_id"                    # B2B: a buyer with a Romanian tax id
    BUYER_ABROAD = "buyer_abroad"                    # extern: outside Romania, no Romanian tax id
    BUYER_ABROAD_RO_VAT = "buyer_abroad_ro_vat"      # outside Romania but VAT-registered here: filed normally
    SELF_BILLING = "self_billing"                    # autofactura: the buyer is a business filing itself


@dataclass(frozen=True)
class Buyer:
    """What the route depends on: the buyer's ids as written (VAT id, other tax scheme id, legal id, party id) and
    its country (ISO 3166-1 alpha-2; missing is read as Romania, where CIUS-RO requires it anyway)."""
    ids: tuple[str, ...]
    country: str | None


@dataclass(frozen=True)
class Route:
    b2c: bool
    extern: bool
    reason: RouteReason

    @property
    def name(self) -> str:
        return "uploadb2c" if self.b2c else "upload"


def is_cnp(value: str) -> bool:
    """13 digits whose last is the CNP control digit (the placeholder of 13 zeros is not one)."""
    return len(value) == 13 and value.isdigit() and value != CNP_PLACEHOLDER \
        and cnp_control_digit(value[:12]) == int(value[12])


def _compact(value: str) -> str:
    return "".join(value.split()).upper()


def document_route(buyer: Buyer, *, autofactura: bool = False) -> Route:
    """The route the document itself calls for."""
    if autofactura:
        return Route(False, False, RouteReason.SELF_BILLING)
    ids = [_compact(i) for i in buyer.ids if i and _compact(i)]
    if any(i == CNP_PLACEHOLDER for i in ids):
        return Route(True, False, RouteReason.BUYER_PLACEHOLDER)
    if any(is_cnp(i) for i in ids):
        return Route(True, False, RouteReason.BUYER_CNP)
    country = _compact(buyer.country or "RO")
    if country != "RO":
        # only a Romanian VAT registration (RO + digits) makes a foreign buyer known in Romania
        if any(i.startswith("RO") and i[2:].isdigit() and i[2:] for i in ids):
            return Route(False, False, RouteReason.BUYER_ABROAD_RO_VAT)
        return Route(False, True, RouteReason.BUYER_ABROAD)
    # a Romanian tax id is digits (after an optional RO); a customer number or a name is not one
    if not any(strip_ro(i).isdigit() for i in ids):
        return Route(True, False, RouteReason.BUYER_WITHOUT_TAX_ID)
    return Route(False, False, RouteReason.BUYER_TAX_ID)


def decide(buyer: Buyer, *, autofactura: bool, b2c: bool | None, extern: bool | None) -> Route:
    """The document's route, checked against what the caller said (None: said nothing). A contradiction raises
    422 `b2c_mismatch` / `extern_mismatch`. With self-billing the caller's `extern` is kept as said (the document
    cannot tell it: the buyer files in its own name)."""
    route = document_route(buyer, autofactura=autofactura)
    if b2c is not None and b2c != route.b2c:
        raise errors.b2c_mismatch(b2c, route.reason)
    if autofactura:
        return Route(False, bool(extern), route.reason)
    if extern is not None and extern != route.extern:
        raise errors.extern_mismatch(extern, route.reason)
    return route
