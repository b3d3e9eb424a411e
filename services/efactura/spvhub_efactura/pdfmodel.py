"""What the PDF shows, read from the archived XML at render time.

Kept apart from `ubl.py` on purpose: the sync reads only the header fields an invoice row needs and must stay
fast, while the PDF needs everything an accountant checks (allowances and charges, line prices with their base
quantity, every preceding invoice, the VAT in each currency as written, the legal-entity registration number).

Hostile input stays bounded: every text is cut to a cap, numbers longer than a cap or out of range are shown as
written (never computed with), and lists (lines, notes, references, allowances) are capped; each cut is recorded
in `PdfDocument.shortened` so the PDF says so.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from lxml import etree
from spvhub_common.ids import strip_ro

from spvhub_efactura.archive import parse_xml

NS_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
NS_CREDIT = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
NS = {"cac": CAC, "cbc": CBC}

MAX_ID = 80          # numbers, codes, identifiers, IBANs
MAX_TEXT = 300       # names, addresses, reasons
MAX_NOTE = 1200      # free-text notes and item descriptions
MAX_NUMBER = 40      # characters of a number read as a number; longer is shown as written
MAX_MAGNITUDE = 18   # 10^18: larger is not a real amount and is shown as written
MAX_LINES = 500
MAX_LIST = 40        # references, document allowances/charges, VAT subtotals
MAX_NOTES = 12
MAX_LINE_AC = 8      # allowances/charges of one line


class NotAnInvoice(ValueError):
    """The XML is not a UBL Invoice or CreditNote."""


@dataclass(frozen=True)
class Num:
    """A number as the XML wrote it: `value` is None when it is not a usable number (then `raw` is shown)."""
    raw: str
    value: Decimal | None
    currency: str | None = None


@dataclass
class Party:
    name: str | None = None
    trade_name: str | None = None
    vat_id: str | None = None          # PartyTaxScheme with TaxScheme VAT
    tax_id: str | None = None          # PartyTaxScheme of another scheme (a non-VAT CIF)
    legal_id: str | None = None        # PartyLegalEntity/CompanyID when it is the CIF again or unclear
    registration: str | None = None    # PartyLegalEntity/CompanyID when it is a trade-register number
    other_id: str | None = None        # PartyIdentification/ID
    street: str | None = None
    street2: str | None = None
    city: str | None = None
    county: str | None = None
    postal_zone: str | None = None
    country: str | None = None
    contact: str | None = None
    phone: str | None = None
    email: str | None = None


@dataclass
class AllowanceCharge:
    charge: bool
    amount: Num
    reason: str | None = None
    reason_code: str | None = None
    base: Num | None = None
    percent: Num | None = None
    vat_category: str | None = None
    vat_percent: Num | None = None


@dataclass
class Line:
    id: str | None
    name: str | None
    description: str | None
    note: str | None
    seller_item_id: str | None
    quantity: Num | None
    unit: str | None
    price: Num | None
    base_quantity: Num | None
    base_unit: str | None
    gross_price: Num | None            # Price/AllowanceCharge/BaseAmount (BT-148)
    price_discount: Num | None         # Price/AllowanceCharge/Amount (BT-147)
    net: Num | None
    vat_category: str | None
    vat_percent: Num | None
    allowances_charges: list[AllowanceCharge] = field(default_factory=list)
    period: tuple[str | None, str | None] | None = None


@dataclass
class VatSubtotal:
    category: str | None
    percent: Num | None
    taxable: Num | None
    amount: Num | None
    exemption_code: str | None = None
    exemption_reason: str | None = None


@dataclass
class TaxTotal:
    amount: Num | None
    subtotals: list[VatSubtotal] = field(default_factory=list)


@dataclass
class Reference:
    number: str | None
    issue_date: str | None


@dataclass
class Payment:
    code: str | None
    iban: str | None
    account_name: str | None
    bank: str | None
    due_date: str | None
    reference: str | None


@dataclass
class PdfDocument:
    credit: bool
    type_code: str | None = None
    number: str | None = None
    issue_date: str | None = None      # ISO text as written; the renderer formats it
    due_date: str | None = None
    tax_point_date: str | None = None
    currency: str | None = None
    tax_currency: str | None = None
    buyer_reference: str | None = None
    order_reference: str | None = None
    contract_reference: str | None = None
    period: tuple[str | None, str | None] | None = None
    seller: Party = field(default_factory=Party)
    buyer: Party = field(default_factory=Party)
    payments: list[Payment] = field(default_factory=list)
    payment_terms: str | None = None
    notes: list[str] = field(default_factory=list)
    preceding: list[Reference] = field(default_factory=list)
    allowances_charges: list[AllowanceCharge] = field(default_factory=list)
    tax_totals: list[TaxTotal] = field(default_factory=list)
    line_extension: Num | None = None
    allowance_total: Num | None = None
    charge_total: Num | None = None
    tax_exclusive: Num | None = None
    tax_inclusive: Num | None = None
    prepaid: Num | None = None
    rounding: Num | None = None
    payable: Num | None = None
    lines: list[Line] = field(default_factory=list)
    line_count: int = 0
    lines_total: Decimal | None = None  # sum of every line's amount (all lines, not only the shown ones)
    shortened: list[str] = field(default_factory=list)

    @property
    def vat_document(self) -> TaxTotal | None:
        """The TaxTotal in the document currency, preferring the one with the breakdown (a RON invoice with
        TaxCurrencyCode RON carries two RON TaxTotals, in either order); else the one with the breakdown."""
        def cur(tt: TaxTotal) -> str | None:
            return tt.amount.currency if tt.amount is not None else None
        ranked = [tt for tt in self.tax_totals if cur(tt) == self.currency and tt.subtotals] + \
                 [tt for tt in self.tax_totals if cur(tt) == self.currency] + \
                 [tt for tt in self.tax_totals if tt.subtotals] + \
                 [tt for tt in self.tax_totals if cur(tt) is None]
        return ranked[0] if ranked else None

    @property
    def vat_other(self) -> list[TaxTotal]:
        """Every other TaxTotal (the accounting-currency VAT, BT-111), each printed in its own currency; a repeat
        of the document VAT in the same currency and amount is not printed twice."""
        main = self.vat_document
        if main is None:
            return list(self.tax_totals)
        return [tt for tt in self.tax_totals if tt is not main and not (
            tt.amount is not None and main.amount is not None and tt.amount.currency == main.amount.currency
            and tt.amount.value == main.amount.value)]


_WS = re.compile(r"\s+")


class _Reader:
    def __init__(self) -> None:
        self.shortened: list[str] = []

    def cut(self, text: str | None, cap: int, what: str) -> str | None:
        if text is None:
            return None
        text = _WS.sub(" ", text[: cap * 2]).strip()
        if not text:
            return None
        if len(text) > cap:
            self.note(what)
            return text[: cap - 1].rstrip() + "…"
        return text

    def note(self, what: str) -> None:
        if what not in self.shortened:
            self.shortened.append(what)

    def text(self, el: Any, path: str, cap: int = MAX_TEXT, what: str = "text") -> str | None:
        found = el.find(path, NS) if el is not None else None
        return self.cut(found.text, cap, what) if found is not None and found.text else None

    def num(self, el: Any, path: str, what: str = "număr") -> Num | None:
        found = el.find(path, NS) if el is not None else None
        if found is None:
            return None
        return self.number(found.text, found.get("currencyID"), what)

    def number(self, text: str | None, currency: str | None, what: str) -> Num | None:
        raw = (text or "").strip()
        if not raw:
            return None
        cur = self.cut(currency, 8, "cod monedă") if currency else None
        if len(raw) > MAX_NUMBER:
            self.note(what)
            return Num(raw[:MAX_NUMBER - 1] + "…", None, cur)
        try:
            value = Decimal(raw.replace(" ", ""))
        except InvalidOperation:
            return Num(raw, None, cur)
        if not value.is_finite() or (value and value.adjusted() >= MAX_MAGNITUDE):
            return Num(raw, None, cur)
        return Num(raw, value, cur)

    def party(self, el: Any) -> Party:
        p = Party()
        if el is None:
            return p
        for scheme in el.findall("cac:PartyTaxScheme", NS)[:4]:
            cid = self.text(scheme, "cbc:CompanyID", MAX_ID, "identificator fiscal")
            sid = (self.text(scheme, "cac:TaxScheme/cbc:ID", MAX_ID) or "").upper()
            if cid and sid == "VAT" and p.vat_id is None:
                p.vat_id = cid
            elif cid and p.tax_id is None:
                p.tax_id = cid
        p.name = self.text(el, "cac:PartyLegalEntity/cbc:RegistrationName", what="nume parte")
        p.trade_name = self.text(el, "cac:PartyName/cbc:Name", what="nume parte")
        if p.name is None:
            p.name, p.trade_name = p.trade_name, None
        elif p.trade_name == p.name:
            p.trade_name = None
        p.other_id = self.text(el, "cac:PartyIdentification/cbc:ID", MAX_ID, "identificator")
        legal = self.text(el, "cac:PartyLegalEntity/cbc:CompanyID", MAX_ID, "nr. înregistrare")
        ro = (self.text(el, "cac:PostalAddress/cac:Country/cbc:IdentificationCode", 8) or "RO").upper() == "RO"
        if legal:
            known = {strip_ro(x).upper() for x in (p.vat_id, p.tax_id, p.other_id) if x}
            if is_registration_number(legal):
                p.registration = legal
            elif strip_ro(legal).upper() in known:
                pass  # the CIF again: printed once, as the CIF
            elif not ro:
                p.registration = legal  # a foreign company number
            else:
                p.legal_id = legal
        addr = el.find("cac:PostalAddress", NS)
        p.street = self.text(addr, "cbc:StreetName", what="adresă")
        p.street2 = self.text(addr, "cbc:AdditionalStreetName", what="adresă")
        p.city = self.text(addr, "cbc:CityName", what="adresă")
        p.county = self.text(addr, "cbc:CountrySubentity", MAX_ID, "adresă")
        p.postal_zone = self.text(addr, "cbc:PostalZone", MAX_ID, "adresă")
        p.country = self.text(addr, "cac:Country/cbc:IdentificationCode", 8, "adresă")
        p.contact = self.text(el, "cac:Contact/cbc:Name", what="contact")
        p.phone = self.text(el, "cac:Contact/cbc:Telephone", MAX_ID, "contact")
        p.email = self.text(el, "cac:Contact/cbc:ElectronicMail", MAX_ID, "contact")
        return p

    def allowance_charge(self, el: Any) -> AllowanceCharge:
        flag = (self.text(el, "cbc:ChargeIndicator", 8) or "").lower()
        return AllowanceCharge(
            charge=flag == "true", amount=self.num(el, "cbc:Amount", "valoare reducere/taxă") or Num("", None),
            reason=self.text(el, "cbc:AllowanceChargeReason", what="motiv reducere/taxă"),
            reason_code=self.text(el, "cbc:AllowanceChargeReasonCode", MAX_ID, "motiv reducere/taxă"),
            base=self.num(el, "cbc:BaseAmount", "bază reducere/taxă"),
            percent=self.num(el, "cbc:MultiplierFactorNumeric", "procent reducere/taxă"),
            vat_category=self.text(el, "cac:TaxCategory/cbc:ID", 8),
            vat_percent=self.num(el, "cac:TaxCategory/cbc:Percent", "cotă TVA"))

    def line(self, el: Any, qty_tag: str) -> Line:
        qty_el = el.find(qty_tag, NS)
        base_el = el.find("cac:Price/cbc:BaseQuantity", NS)
        price_ac = el.find("cac:Price/cac:AllowanceCharge", NS)
        acs = el.findall("cac:AllowanceCharge", NS)
        if len(acs) > MAX_LINE_AC:
            self.note("reduceri/taxe pe linie")
        period = el.find("cac:InvoicePeriod", NS)
        return Line(
            id=self.text(el, "cbc:ID", MAX_ID, "nr. linie"),
            name=self.text(el, "cac:Item/cbc:Name", what="denumire articol"),
            description=self.text(el, "cac:Item/cbc:Description", MAX_TEXT, "descriere articol"),
            note=self.text(el, "cbc:Note", MAX_TEXT, "notă linie"),
            seller_item_id=self.text(el, "cac:Item/cac:SellersItemIdentification/cbc:ID", MAX_ID, "cod articol"),
            quantity=self.number(qty_el.text, None, "cantitate") if qty_el is not None else None,
            unit=self.cut(qty_el.get("unitCode"), 12, "unitate") if qty_el is not None else None,
            price=self.num(el, "cac:Price/cbc:PriceAmount", "preț"),
            base_quantity=self.number(base_el.text, None, "cantitate de bază") if base_el is not None else None,
            base_unit=self.cut(base_el.get("unitCode"), 12, "unitate") if base_el is not None else None,
            gross_price=self.num(price_ac, "cbc:BaseAmount", "preț brut") if price_ac is not None else None,
            price_discount=self.num(price_ac, "cbc:Amount", "reducere preț") if price_ac is not None else None,
            net=self.num(el, "cbc:LineExtensionAmount", "valoare linie"),
            vat_category=self.text(el, "cac:Item/cac:ClassifiedTaxCategory/cbc:ID", 8),
            vat_percent=self.num(el, "cac:Item/cac:ClassifiedTaxCategory/cbc:Percent", "cotă TVA"),
            allowances_charges=[self.allowance_charge(a) for a in acs[:MAX_LINE_AC]],
            period=(self.text(period, "cbc:StartDate", 20), self.text(period, "cbc:EndDate", 20))
            if period is not None else None)


_REGISTRATION_OLD = re.compile(r"^[JFC]\d{1,2}/\d{1,8}/(\d{4}|\d{2}|\d{1,2}\.\d{1,2}\.\d{4})$")
_REGISTRATION_NEW = re.compile(r"^[JFC]\d{12,14}$")


def is_registration_number(value: str) -> bool:
    """A Romanian trade-register number: J40/1234/2010 (also F/C, any spacing) or the 2024 form J2024001234403.
    A CIF (digits, with or without RO) never is."""
    v = re.sub(r"\s+", "", value).upper()
    return bool(_REGISTRATION_OLD.match(v) or _REGISTRATION_NEW.match(v))


def read_document(xml: bytes) -> PdfDocument:
    """The renderable content of an archived Invoice/CreditNote (parsed with the archive's hardened parser)."""
    return read_root(parse_xml(xml))


def read_root(root: Any) -> PdfDocument:
    q = etree.QName(root)
    if (q.namespace, q.localname) == (NS_INVOICE, "Invoice"):
        credit = False
    elif (q.namespace, q.localname) == (NS_CREDIT, "CreditNote"):
        credit = True
    else:
        raise NotAnInvoice("only invoices and credit notes are rendered")
    r = _Reader()
    d = PdfDocument(credit=credit)
    d.type_code = r.text(root, "cbc:CreditNoteTypeCode" if credit else "cbc:InvoiceTypeCode", 8)
    d.number = r.text(root, "cbc:ID", MAX_ID, "număr factură")
    d.issue_date = r.text(root, "cbc:IssueDate", 20)
    d.due_date = r.text(root, "cbc:DueDate", 20) or r.text(root, "cac:PaymentMeans/cbc:PaymentDueDate", 20)
    d.tax_point_date = r.text(root, "cbc:TaxPointDate", 20)
    d.currency = r.text(root, "cbc:DocumentCurrencyCode", 8)
    d.tax_currency = r.text(root, "cbc:TaxCurrencyCode", 8)
    d.buyer_reference = r.text(root, "cbc:BuyerReference", MAX_ID, "referință cumpărător")
    d.order_reference = r.text(root, "cac:OrderReference/cbc:ID", MAX_ID, "referință comandă")
    d.contract_reference = r.text(root, "cac:ContractDocumentReference/cbc:ID", MAX_ID, "referință contract")
    period = root.find("cac:InvoicePeriod", NS)
    if period is not None:
        d.period = (r.text(period, "cbc:StartDate", 20), r.text(period, "cbc:EndDate", 20))
    notes = root.findall("cbc:Note", NS)
    if len(notes) > MAX_NOTES:
        r.note("note")
    d.notes = [n for n in (r.cut(x.text, MAX_NOTE, "note") for x in notes[:MAX_NOTES]) if n]
    refs = root.findall("cac:BillingReference/cac:InvoiceDocumentReference", NS)
    if len(refs) > MAX_LIST:
        r.note("facturi de referință")
    d.preceding = [Reference(r.text(x, "cbc:ID", MAX_ID, "factură de referință"), r.text(x, "cbc:IssueDate", 20))
                   for x in refs[:MAX_LIST]]
    d.seller = r.party(root.find("cac:AccountingSupplierParty/cac:Party", NS))
    d.buyer = r.party(root.find("cac:AccountingCustomerParty/cac:Party", NS))
    for pm in root.findall("cac:PaymentMeans", NS)[:4]:
        d.payments.append(Payment(
            code=r.text(pm, "cbc:PaymentMeansCode", 8), iban=r.text(pm, "cac:PayeeFinancialAccount/cbc:ID", MAX_ID,
                                                                    "cont bancar"),
            account_name=r.text(pm, "cac:PayeeFinancialAccount/cbc:Name", what="cont bancar"),
            bank=r.text(pm, "cac:PayeeFinancialAccount/cac:FinancialInstitutionBranch/cbc:ID", MAX_ID, "bancă"),
            due_date=r.text(pm, "cbc:PaymentDueDate", 20),
            reference=r.text(pm, "cbc:PaymentID", MAX_ID, "referință plată")))
    d.payment_terms = r.text(root, "cac:PaymentTerms/cbc:Note", MAX_NOTE, "termeni de plată")
    acs = root.findall("cac:AllowanceCharge", NS)
    if len(acs) > MAX_LIST:
        r.note("reduceri/taxe la nivel de document")
    d.allowances_charges = [r.allowance_charge(a) for a in acs[:MAX_LIST]]
    for tt in root.findall("cac:TaxTotal", NS)[:4]:
        subs = tt.findall("cac:TaxSubtotal", NS)
        if len(subs) > MAX_LIST:
            r.note("defalcare TVA")
        d.tax_totals.append(TaxTotal(r.num(tt, "cbc:TaxAmount", "total TVA"), [
            VatSubtotal(category=r.text(s, "cac:TaxCategory/cbc:ID", 8),
                        percent=r.num(s, "cac:TaxCategory/cbc:Percent", "cotă TVA"),
                        taxable=r.num(s, "cbc:TaxableAmount", "bază impozabilă"),
                        amount=r.num(s, "cbc:TaxAmount", "valoare TVA"),
                        exemption_code=r.text(s, "cac:TaxCategory/cbc:TaxExemptionReasonCode", MAX_ID,
                                              "motiv scutire"),
                        exemption_reason=r.text(s, "cac:TaxCategory/cbc:TaxExemptionReason", what="motiv scutire"))
            for s in subs[:MAX_LIST]]))
    lmt = root.find("cac:LegalMonetaryTotal", NS)
    d.line_extension = r.num(lmt, "cbc:LineExtensionAmount", "totaluri")
    d.allowance_total = r.num(lmt, "cbc:AllowanceTotalAmount", "totaluri")
    d.charge_total = r.num(lmt, "cbc:ChargeTotalAmount", "totaluri")
    d.tax_exclusive = r.num(lmt, "cbc:TaxExclusiveAmount", "totaluri")
    d.tax_inclusive = r.num(lmt, "cbc:TaxInclusiveAmount", "totaluri")
    d.prepaid = r.num(lmt, "cbc:PrepaidAmount", "totaluri")
    d.rounding = r.num(lmt, "cbc:PayableRoundingAmount", "totaluri")
    d.payable = r.num(lmt, "cbc:PayableAmount", "totaluri")
    line_tag, qty_tag = ("CreditNoteLine", "cbc:CreditedQuantity") if credit else ("InvoiceLine",
                                                                                      "cbc:InvoicedQuantity")
    total: Decimal | None = Decimal(0)
    amount_tag = f"{{{CBC}}}LineExtensionAmount"
    for i, el in enumerate(root.iterchildren(f"{{{CAC}}}{line_tag}")):
        d.line_count += 1
        if i < MAX_LINES:
            d.lines.append(r.line(el, qty_tag))
        if total is not None:
            # every line is summed (a cheap read of one child), so the check covers the lines not shown too
            amount_el = el.find(amount_tag)
            n = r.number(amount_el.text if amount_el is not None else None, None, "valoare linie")
            total = total + n.value if n is not None and n.value is not None else None
    d.lines_total = total if d.line_count else None
    d.shortened = r.shortened
    return d
