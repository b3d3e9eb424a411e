"""Reader of what ANAF's messages contain: UBL 2.1 / CIUS-RO Invoice and CreditNote (any namespace prefixes,
matched on namespace + local name), ANAF error reports (`mesajEroriFactuta:v1`) and buyer messages (RASP).

Tolerant by design: an accepted invoice is never re-validated on read; missing fields stay None.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from lxml import etree
from spvhub_common.ids import strip_ro

NS_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
NS_CREDIT = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
NS_ERRORS = "mfp:anaf:dgti:efactura:mesajEroriFactuta:v1"
NS_RASP = "mfp:anaf:dgti:spv:reqMesaj:v1"
NS = {"cac": CAC, "cbc": CBC}


class NotUbl(Exception):
    """The content is none of the documents this reader knows."""


@dataclass
class PartyInfo:
    cif: str | None = None
    vat_id: str | None = None
    name: str | None = None
    trade_name: str | None = None
    registration: str | None = None
    street: str | None = None
    city: str | None = None
    county: str | None = None
    postal_zone: str | None = None
    country: str | None = None


@dataclass
class LineInfo:
    id: str | None
    name: str | None
    quantity: Decimal | None
    unit: str | None
    price: Decimal | None
    net: Decimal | None
    vat_category: str | None
    vat_percent: Decimal | None


@dataclass
class VatInfo:
    category: str | None
    percent: Decimal | None
    taxable: Decimal | None
    amount: Decimal | None
    exemption: str | None = None


@dataclass
class Document:
    document_type: str  # invoice | credit_note
    customization: str | None = None
    number: str | None = None
    issue_date: date | None = None
    due_date: date | None = None
    type_code: str | None = None
    currency: str | None = None
    tax_currency: str | None = None
    seller: PartyInfo = field(default_factory=PartyInfo)
    buyer: PartyInfo = field(default_factory=PartyInfo)
    line_extension: Decimal | None = None
    tax_exclusive: Decimal | None = None
    tax_inclusive: Decimal | None = None
    allowance_total: Decimal | None = None
    charge_total: Decimal | None = None
    prepaid: Decimal | None = None
    rounding: Decimal | None = None
    payable: Decimal | None = None
    vat_amount: Decimal | None = None
    vat_amount_accounting: Decimal | None = None
    vat_breakdown: list[VatInfo] = field(default_factory=list)
    lines: list[LineInfo] = field(default_factory=list)  # empty when read with lines=False
    line_count: int = 0
    preceding_number: str | None = None
    notes: list[str] = field(default_factory=list)
    payment_iban: str | None = None

    @property
    def self_billing(self) -> bool:
        return self.type_code == "389"

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("lines", None)
        return d


@dataclass
class ErrorReport:
    upload_index: str | None
    issuer_cif: str | None
    errors: list[str]


@dataclass
class BuyerMessage:
    upload_index: str | None
    message: str | None


@lru_cache(maxsize=256)
def _steps(path: str) -> tuple[str, ...]:
    """"cac:Party/cbc:Name" -> Clark tags, once per path."""
    out = []
    for step in path.split("/"):
        prefix, _, local = step.rpartition(":")
        out.append(f"{{{NS[prefix]}}}{local}" if prefix else local)
    return tuple(out)


class _Node:
    """An element with its children grouped by tag, grouped on first lookup and kept: a document takes about a
    hundred lookups, mostly below the same few elements (the parties, the totals), and walking lxml's children
    again for each (ElementPath or iterchildren) cost most of the reading."""

    __slots__ = ("el", "_kids")

    def __init__(self, el: Any) -> None:
        self.el = el
        self._kids: dict[Any, list[_Node]] | None = None

    def kids(self, tag: str) -> list[_Node]:
        if self._kids is None:
            kids: dict[Any, list[_Node]] = {}
            for child in self.el:
                kids.setdefault(child.tag, []).append(_Node(child))
            self._kids = kids
        return self._kids.get(tag) or []


def _find(node: _Node, path: str) -> _Node | None:
    """`el.find(path, NS)` for a plain child path: the first match in document order."""
    return _walk(node, _steps(path), 0)


def _walk(node: _Node, steps: tuple[str, ...], i: int) -> _Node | None:
    kids = node.kids(steps[i])
    if i == len(steps) - 1:
        return kids[0] if kids else None
    for child in kids:
        found = _walk(child, steps, i + 1)
        if found is not None:
            return found
    return None


def _findall(node: _Node, path: str) -> list[_Node]:
    """`el.findall(path, NS)` for a plain child path, in document order."""
    level = [node]
    for tag in _steps(path):
        level = [child for parent in level for child in parent.kids(tag)]
    return level


def _t(node: _Node, path: str) -> str | None:
    found = _find(node, path)
    text = found.el.text if found is not None else None
    if text is None:
        return None
    return text.strip() or None


def _d(node: _Node, path: str) -> Decimal | None:
    v = _t(node, path)
    if v is None:
        return None
    try:
        return Decimal(v.replace(" ", ""))
    except InvalidOperation:
        return None


def _date(node: _Node, path: str) -> date | None:
    v = _t(node, path)
    if not v:
        return None
    try:
        return date.fromisoformat(v[:10])
    except ValueError:
        return None


def _party(el: _Node | None) -> PartyInfo:
    p = PartyInfo()
    if el is None:
        return p
    vat = None
    other = None
    for scheme in _findall(el, "cac:PartyTaxScheme"):
        cid = _t(scheme, "cbc:CompanyID")
        sid = (_t(scheme, "cac:TaxScheme/cbc:ID") or "").upper()
        if cid and sid == "VAT" and vat is None:
            vat = cid
        elif cid and other is None:
            other = cid
    legal_id = _t(el, "cac:PartyLegalEntity/cbc:CompanyID")
    ident = _t(el, "cac:PartyIdentification/cbc:ID")
    p.vat_id = vat
    for candidate in (vat, other, legal_id, ident):
        if candidate:
            n = strip_ro(candidate)
            if n.isdigit() and 2 <= len(n) <= 13:
                p.cif = n
                break
    if p.cif is None:
        p.cif = strip_ro(vat or other).upper() or None
    p.registration = legal_id if legal_id and legal_id != p.cif else None
    p.name = _t(el, "cac:PartyLegalEntity/cbc:RegistrationName") or _t(el, "cac:PartyName/cbc:Name")
    p.trade_name = _t(el, "cac:PartyName/cbc:Name")
    p.street = _t(el, "cac:PostalAddress/cbc:StreetName")
    p.city = _t(el, "cac:PostalAddress/cbc:CityName")
    p.county = _t(el, "cac:PostalAddress/cbc:CountrySubentity")
    p.postal_zone = _t(el, "cac:PostalAddress/cbc:PostalZone")
    p.country = _t(el, "cac:PostalAddress/cac:Country/cbc:IdentificationCode")
    return p


def read(root: Any, *, lines: bool = True) -> Document | ErrorReport | BuyerMessage:
    """Dispatch on the root's namespace + local name; raises NotUbl for anything else. `lines=False`: count the
    invoice lines without reading them (the sync records header fields only; the PDF reads the lines)."""
    q = etree.QName(root)
    if q.namespace == NS_ERRORS:
        errors = [e.get("errorMessage", "").strip() for e in root if etree.QName(e).localname == "Error"]
        return ErrorReport(root.get("Index_incarcare"), root.get("Cif_emitent"), [e for e in errors if e])
    if q.namespace == NS_RASP:
        return BuyerMessage(root.get("index_incarcare"), root.get("message"))
    if (q.namespace, q.localname) == (NS_INVOICE, "Invoice"):
        return _document(root, credit=False, lines=lines)
    if (q.namespace, q.localname) == (NS_CREDIT, "CreditNote"):
        return _document(root, credit=True, lines=lines)
    raise NotUbl(f"unknown document root {{{q.namespace}}}{q.localname}")


def _document(root_el: Any, credit: bool, lines: bool = True) -> Document:
    d = Document(document_type="credit_note" if credit else "invoice")
    root = _Node(root_el)
    d.customization = _t(root, "cbc:CustomizationID")
    d.number = _t(root, "cbc:ID")
    d.issue_date = _date(root, "cbc:IssueDate")
    d.due_date = _date(root, "cbc:DueDate") or _date(root, "cac:PaymentMeans/cbc:PaymentDueDate")
    d.type_code = _t(root, "cbc:CreditNoteTypeCode" if credit else "cbc:InvoiceTypeCode")
    d.currency = _t(root, "cbc:DocumentCurrencyCode")
    d.tax_currency = _t(root, "cbc:TaxCurrencyCode")
    d.notes = [n.el.text.strip() for n in _findall(root, "cbc:Note") if n.el.text and n.el.text.strip()]
    d.seller = _party(_find(root, "cac:AccountingSupplierParty/cac:Party"))
    d.buyer = _party(_find(root, "cac:AccountingCustomerParty/cac:Party"))
    d.preceding_number = _t(root, "cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID")
    d.payment_iban = _t(root, "cac:PaymentMeans/cac:PayeeFinancialAccount/cbc:ID")
    lmt = _find(root, "cac:LegalMonetaryTotal")
    if lmt is not None:
        d.line_extension = _d(lmt, "cbc:LineExtensionAmount")
        d.tax_exclusive = _d(lmt, "cbc:TaxExclusiveAmount")
        d.tax_inclusive = _d(lmt, "cbc:TaxInclusiveAmount")
        d.allowance_total = _d(lmt, "cbc:AllowanceTotalAmount")
        d.charge_total = _d(lmt, "cbc:ChargeTotalAmount")
        d.prepaid = _d(lmt, "cbc:PrepaidAmount")
        d.rounding = _d(lmt, "cbc:PayableRoundingAmount")
        d.payable = _d(lmt, "cbc:PayableAmount")
    for tt in _findall(root, "cac:TaxTotal"):
        amount_el = _find(tt, "cbc:TaxAmount")
        cur = amount_el.el.get("currencyID") if amount_el is not None else None
        amount = _d(tt, "cbc:TaxAmount")
        if d.vat_amount is None and (cur in (None, d.currency) or _find(tt, "cac:TaxSubtotal") is not None):
            d.vat_amount = amount
            for sub in _findall(tt, "cac:TaxSubtotal"):
                d.vat_breakdown.append(VatInfo(
                    category=_t(sub, "cac:TaxCategory/cbc:ID"), percent=_d(sub, "cac:TaxCategory/cbc:Percent"),
                    taxable=_d(sub, "cbc:TaxableAmount"), amount=_d(sub, "cbc:TaxAmount"),
                    exemption=_t(sub, "cac:TaxCategory/cbc:TaxExemptionReasonCode")
                    or _t(sub, "cac:TaxCategory/cbc:TaxExemptionReason")))
        elif cur and cur == d.tax_currency:
            d.vat_amount_accounting = amount
    line_tag, qty_tag = ("cac:CreditNoteLine", "cbc:CreditedQuantity") if credit else \
        ("cac:InvoiceLine", "cbc:InvoicedQuantity")
    line_els = _findall(root, line_tag)
    d.line_count = len(line_els)
    for ln in line_els if lines else ():
        qty_el = _find(ln, qty_tag)
        d.lines.append(LineInfo(
            id=_t(ln, "cbc:ID"), name=_t(ln, "cac:Item/cbc:Name"), quantity=_d(ln, qty_tag),
            unit=qty_el.el.get("unitCode") if qty_el is not None else None,
            price=_d(ln, "cac:Price/cbc:PriceAmount"), net=_d(ln, "cbc:LineExtensionAmount"),
            vat_category=_t(ln, "cac:Item/cac:ClassifiedTaxCategory/cbc:ID"),
            vat_percent=_d(ln, "cac:Item/cac:ClassifiedTaxCategory/cbc:Percent")))
    return d
