"""CIUS-RO UBL 2.1 invoices: deterministic generator, reader of uploaded documents, validation rules."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree
from spvhub_einvoice import Report, default_validator

CIUS_RO = "urn:cen.eu:en16931:2017#compliant#urn:efactura.mfinante.ro:CIUS-RO:1.0.1"
NS_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
NS_CREDIT = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
NS_CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
NS_CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
NS_CII = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
NS_RASP = "mfp:anaf:dgti:spv:reqMesaj:v1"
NS = {"cac": NS_CAC, "cbc": NS_CBC}

COUNTIES = {
    "AB", "AR", "AG", "BC", "BH", "BN", "BT", "BV", "BR", "BZ", "CS", "CL", "CJ", "CT", "CV", "DB", "DJ",
    "GL", "GR", "GJ", "HR", "HD", "IL", "IS", "IF", "MM", "MH", "MS", "NT", "OT", "PH", "SM", "SJ", "SB",
    "SV", "TR", "TM", "TL", "VS", "VL", "VN", "B",
}
TWO = Decimal("0.01")

PRODUCTS = [
    ("Servicii contabilitate lunara", "H87", Decimal("1500.00")),
    ("Consultanta fiscala", "HUR", Decimal("250.00")),
    ("Hartie copiator A4 80g", "H87", Decimal("24.90")),
    ("Toner imprimanta laser", "H87", Decimal("389.00")),
    ("Licenta software anuala", "H87", Decimal("2400.00")),
    ("Transport marfa intern", "KMT", Decimal("4.20")),
    ("Motorina", "LTR", Decimal("7.45")),
    ("Piese schimb autoutilitara", "H87", Decimal("615.50")),
    ("Paine alba 500g", "H87", Decimal("3.80")),
    ("Mentenanta echipamente IT", "HUR", Decimal("180.00")),
    ("Chirie spatiu birou", "MON", Decimal("3200.00")),
    ("Servicii curatenie", "H87", Decimal("950.00")),
    ("Ciment Portland 40kg", "H87", Decimal("32.75")),
    ("Manopera reparatii", "HUR", Decimal("120.00")),
]
# (category, percent, exemption reason code)
VAT_CHOICES = [("S", Decimal(21), None)] * 6 + [
    ("S", Decimal(11), None),
    ("Z", Decimal(0), None),
    ("E", Decimal(0), "VATEX-EU-132"),
    ("AE", Decimal(0), "VATEX-EU-AE"),
]


def money(value: Decimal) -> Decimal:
    return value.quantize(TWO, rounding=ROUND_HALF_UP)


@dataclass
class Party:
    cui: str
    name: str
    vat: bool = True
    street: str = "Str. Exemplu nr. 1"
    city: str = "Cluj-Napoca"
    county: str = "CJ"
    postal_zone: str = "400001"
    nr_reg_com: str = ""
    country: str = "RO"


@dataclass
class Line:
    name: str
    quantity: Decimal
    unit: str
    price: Decimal
    category: str
    percent: Decimal
    exemption: str | None = None

    @property
    def net(self) -> Decimal:
        return money(self.quantity * self.price)


@dataclass
class InvoiceSpec:
    number: str
    issue_date: date
    seller: Party
    buyer: Party
    lines: list[Line]
    currency: str = "RON"
    credit_note: bool = False
    type_code: str = "380"
    rate: Decimal = Decimal(1)  # RON per currency unit when currency != RON
    preceding: str | None = None
    note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def random_lines(rng: random.Random, buyer_foreign_vat: bool = False) -> list[Line]:
    lines = []
    for _ in range(rng.randint(1, 5)):
        name, unit, base = rng.choice(PRODUCTS)
        qty = Decimal(rng.choice([1, 1, 2, 3, 5, 10, 12, 25, 100]))
        price = money(base * Decimal(rng.randint(80, 125)) / Decimal(100))
        cat, pct, reason = rng.choice(VAT_CHOICES)
        lines.append(Line(name, qty, unit, price, cat, pct, reason))
    return lines


def _vat_breakdown(lines: list[Line]) -> list[tuple[str, Decimal, str | None, Decimal, Decimal]]:
    groups: dict[tuple[str, Decimal], list[Line]] = {}
    for line in lines:
        groups.setdefault((line.category, line.percent), []).append(line)
    out = []
    for (cat, pct), group in groups.items():
        taxable = sum((ln.net for ln in group), Decimal(0))
        out.append((cat, pct, group[0].exemption, taxable, money(taxable * pct / Decimal(100))))
    return out


def _party_xml(p: Party, role: str) -> str:
    county = "RO-B" if p.county == "B" else f"RO-{p.county}"
    city = p.city if p.county != "B" else (p.city if p.city.startswith("SECTOR") else "SECTOR1")
    tax = (
        f"<cac:PartyTaxScheme><cbc:CompanyID>RO{p.cui}</cbc:CompanyID>"
        "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>"
        if p.vat
        else f"<cac:PartyTaxScheme><cbc:CompanyID>{p.cui}</cbc:CompanyID>"
        "<cac:TaxScheme/></cac:PartyTaxScheme>"
    )
    # A natural person has no trade-register number: their CNP is their legal registration identifier (BT-30)
    legal = p.nr_reg_com or (p.cui if len(p.cui) == 13 and p.cui.isdigit() else "")
    legal_id = f"<cbc:CompanyID>{escape(legal)}</cbc:CompanyID>" if legal else ""
    return (
        f"<cac:{role}><cac:Party>"
        f"<cac:PartyName><cbc:Name>{escape(p.name)}</cbc:Name></cac:PartyName>"
        f"<cac:PostalAddress><cbc:StreetName>{escape(p.street)}</cbc:StreetName>"
        f"<cbc:CityName>{escape(city)}</cbc:CityName><cbc:PostalZone>{p.postal_zone}</cbc:PostalZone>"
        f"<cbc:CountrySubentity>{county}</cbc:CountrySubentity>"
        f"<cac:Country><cbc:IdentificationCode>{p.country}</cbc:IdentificationCode></cac:Country>"
        f"</cac:PostalAddress>{tax}"
        f"<cac:PartyLegalEntity><cbc:RegistrationName>{escape(p.name)}</cbc:RegistrationName>{legal_id}"
        f"</cac:PartyLegalEntity></cac:Party></cac:{role}>"
    )


def render(spec: InvoiceSpec) -> bytes:
    """A CIUS-RO 1.0.1 Invoice or CreditNote for `spec` (totals and VAT breakdown computed)."""
    cur = spec.currency
    root = "CreditNote" if spec.credit_note else "Invoice"
    ns = NS_CREDIT if spec.credit_note else NS_INVOICE
    breakdown = _vat_breakdown(spec.lines)
    net = sum((ln.net for ln in spec.lines), Decimal(0))
    vat = sum((b[4] for b in breakdown), Decimal(0))
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<{root} xmlns="{ns}" xmlns:cac="{NS_CAC}" xmlns:cbc="{NS_CBC}">',
        f"<cbc:CustomizationID>{CIUS_RO}</cbc:CustomizationID>",
        f"<cbc:ID>{escape(spec.number)}</cbc:ID>",
        f"<cbc:IssueDate>{spec.issue_date.isoformat()}</cbc:IssueDate>",
    ]
    due = (spec.issue_date + timedelta(days=30)).isoformat()
    if not spec.credit_note:
        parts.append(f"<cbc:DueDate>{due}</cbc:DueDate>")
        parts.append(f"<cbc:InvoiceTypeCode>{spec.type_code}</cbc:InvoiceTypeCode>")
    else:
        parts.append("<cbc:CreditNoteTypeCode>381</cbc:CreditNoteTypeCode>")
    if spec.note:
        parts.append(f"<cbc:Note>{escape(spec.note)}</cbc:Note>")
    parts.append(f"<cbc:DocumentCurrencyCode>{cur}</cbc:DocumentCurrencyCode>")
    if cur != "RON":
        parts.append("<cbc:TaxCurrencyCode>RON</cbc:TaxCurrencyCode>")
    if spec.preceding:
        parts.append(
            "<cac:BillingReference><cac:InvoiceDocumentReference>"
            f"<cbc:ID>{escape(spec.preceding)}</cbc:ID></cac:InvoiceDocumentReference></cac:BillingReference>"
        )
    parts.append(_party_xml(spec.seller, "AccountingSupplierParty"))
    parts.append(_party_xml(spec.buyer, "AccountingCustomerParty"))
    parts.append("<cac:PaymentMeans><cbc:PaymentMeansCode>30</cbc:PaymentMeansCode>")
    if spec.credit_note:
        parts.append(f"<cbc:PaymentDueDate>{due}</cbc:PaymentDueDate>")
    parts.append(
        "<cac:PayeeFinancialAccount><cbc:ID>RO49AAAA1B31007593840000</cbc:ID></cac:PayeeFinancialAccount>"
        "</cac:PaymentMeans>"
    )
    parts.append(f'<cac:TaxTotal><cbc:TaxAmount currencyID="{cur}">{vat}</cbc:TaxAmount>')
    for cat, pct, reason, taxable, amount in breakdown:
        reason_xml = f"<cbc:TaxExemptionReasonCode>{reason}</cbc:TaxExemptionReasonCode>" if reason else ""
        parts.append(
            f'<cac:TaxSubtotal><cbc:TaxableAmount currencyID="{cur}">{taxable}</cbc:TaxableAmount>'
            f'<cbc:TaxAmount currencyID="{cur}">{amount}</cbc:TaxAmount>'
            f"<cac:TaxCategory><cbc:ID>{cat}</cbc:ID><cbc:Percent>{pct}</cbc:Percent>{reason_xml}"
            "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory></cac:TaxSubtotal>"
        )
    parts.append("</cac:TaxTotal>")
    if cur != "RON":
        parts.append(f'<cac:TaxTotal><cbc:TaxAmount currencyID="RON">{money(vat * spec.rate)}</cbc:TaxAmount></cac:TaxTotal>')
    parts.append(
        f'<cac:LegalMonetaryTotal><cbc:LineExtensionAmount currencyID="{cur}">{net}</cbc:LineExtensionAmount>'
        f'<cbc:TaxExclusiveAmount currencyID="{cur}">{net}</cbc:TaxExclusiveAmount>'
        f'<cbc:TaxInclusiveAmount currencyID="{cur}">{net + vat}</cbc:TaxInclusiveAmount>'
        f'<cbc:PayableAmount currencyID="{cur}">{net + vat}</cbc:PayableAmount></cac:LegalMonetaryTotal>'
    )
    line_tag = "CreditNoteLine" if spec.credit_note else "InvoiceLine"
    qty_tag = "CreditedQuantity" if spec.credit_note else "InvoicedQuantity"
    for i, ln in enumerate(spec.lines, 1):
        reason_xml = ""
        parts.append(
            f"<cac:{line_tag}><cbc:ID>{i}</cbc:ID>"
            f'<cbc:{qty_tag} unitCode="{ln.unit}">{ln.quantity}</cbc:{qty_tag}>'
            f'<cbc:LineExtensionAmount currencyID="{cur}">{ln.net}</cbc:LineExtensionAmount>'
            f"<cac:Item><cbc:Name>{escape(ln.name)}</cbc:Name>"
            f"<cac:ClassifiedTaxCategory><cbc:ID>{ln.category}</cbc:ID><cbc:Percent>{ln.percent}</cbc:Percent>"
            f"{reason_xml}<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory></cac:Item>"
            f'<cac:Price><cbc:PriceAmount currencyID="{cur}">{ln.price}</cbc:PriceAmount></cac:Price>'
            f"</cac:{line_tag}>"
        )
    parts.append(f"</{root}>")
    return "".join(parts).encode("utf-8")


def render_rasp(invoice_index: int, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<header xmlns="{NS_RASP}" '
        f'index_incarcare="{invoice_index}" message="{escape(message, {chr(34): "&quot;"})}"/>'
    ).encode()


# ---------------------------------------------------------------------------------------------
# Reading uploaded documents


def strip_ro(value: str | None) -> str:
    text = (value or "").strip().upper()
    if text.startswith("RO"):
        text = text[2:].strip()
    return text


@dataclass
class ReadDocument:
    kind: str  # invoice | credit_note | cii | rasp
    customization: str | None = None
    number: str | None = None
    issue_date: str | None = None
    currency: str | None = None
    seller_cif: str | None = None
    buyer_cif: str | None = None
    seller_name: str | None = None
    buyer_name: str | None = None
    seller_country: str | None = None
    buyer_country: str | None = None
    seller_county: str | None = None
    buyer_county: str | None = None
    seller_city: str | None = None
    buyer_city: str | None = None
    line_sum: Decimal | None = None
    line_extension: Decimal | None = None
    tax_exclusive: Decimal | None = None
    tax_inclusive: Decimal | None = None
    tax_amount: Decimal | None = None
    payable: Decimal | None = None
    rasp_index: str | None = None
    rasp_message: str | None = None
    lines: list[dict[str, str]] = field(default_factory=list)
    vat_breakdown: list[dict[str, str]] = field(default_factory=list)


def _dec(el: Any) -> Decimal | None:
    if el is None or el.text is None:
        return None
    try:
        return Decimal(el.text.strip())
    except ArithmeticError:
        return None


def _party_cif(party: Any) -> str | None:
    if party is None:
        return None
    for scheme in party.findall("cac:PartyTaxScheme", NS):
        cid = scheme.findtext("cbc:CompanyID", namespaces=NS)
        if cid:
            return strip_ro(cid)
    legal = party.findtext("cac:PartyLegalEntity/cbc:CompanyID", namespaces=NS)
    if legal and strip_ro(legal).isdigit():
        return strip_ro(legal)
    ident = party.findtext("cac:PartyIdentification/cbc:ID", namespaces=NS)
    return strip_ro(ident) if ident else None


def read_document(root: Any) -> ReadDocument:
    """Extract what the emulator needs from a parsed Invoice/CreditNote/CII/RASP root."""
    qname = etree.QName(root)
    if qname.namespace == NS_RASP:
        return ReadDocument(kind="rasp", rasp_index=root.get("index_incarcare"), rasp_message=root.get("message"))
    if qname.namespace == NS_CII:
        doc = ReadDocument(kind="cii")
        ids = root.xpath("//*[local-name()='SellerTradeParty']//*[local-name()='SpecifiedTaxRegistration']/*[local-name()='ID']/text()")
        bids = root.xpath("//*[local-name()='BuyerTradeParty']//*[local-name()='SpecifiedTaxRegistration']/*[local-name()='ID']/text()")
        doc.seller_cif = strip_ro(ids[0]) if ids else None
        doc.buyer_cif = strip_ro(bids[0]) if bids else None
        doc.customization = CIUS_RO
        return doc
    credit = qname.localname == "CreditNote"
    doc = ReadDocument(kind="credit_note" if credit else "invoice")
    doc.customization = (root.findtext("cbc:CustomizationID", namespaces=NS) or "").strip()
    doc.number = root.findtext("cbc:ID", namespaces=NS)
    doc.issue_date = root.findtext("cbc:IssueDate", namespaces=NS)
    doc.currency = root.findtext("cbc:DocumentCurrencyCode", namespaces=NS)
    for role, prefix in (("AccountingSupplierParty", "seller"), ("AccountingCustomerParty", "buyer")):
        party = root.find(f"cac:{role}/cac:Party", NS)
        setattr(doc, f"{prefix}_cif", _party_cif(party))
        if party is not None:
            name = party.findtext("cac:PartyLegalEntity/cbc:RegistrationName", namespaces=NS) or party.findtext(
                "cac:PartyName/cbc:Name", namespaces=NS
            )
            setattr(doc, f"{prefix}_name", name)
            setattr(doc, f"{prefix}_country", party.findtext("cac:PostalAddress/cac:Country/cbc:IdentificationCode", namespaces=NS))
            setattr(doc, f"{prefix}_county", party.findtext("cac:PostalAddress/cbc:CountrySubentity", namespaces=NS))
            setattr(doc, f"{prefix}_city", party.findtext("cac:PostalAddress/cbc:CityName", namespaces=NS))
    line_tag = "cac:CreditNoteLine" if credit else "cac:InvoiceLine"
    qty_tag = "cbc:CreditedQuantity" if credit else "cbc:InvoicedQuantity"
    total = Decimal(0)
    for line in root.findall(line_tag, NS):
        amount = _dec(line.find("cbc:LineExtensionAmount", NS)) or Decimal(0)
        total += amount
        doc.lines.append(
            {
                "name": line.findtext("cac:Item/cbc:Name", default="", namespaces=NS),
                "quantity": line.findtext(qty_tag, default="", namespaces=NS),
                "price": line.findtext("cac:Price/cbc:PriceAmount", default="", namespaces=NS),
                "amount": str(amount),
                "vat": line.findtext("cac:Item/cac:ClassifiedTaxCategory/cbc:ID", default="", namespaces=NS)
                + " "
                + line.findtext("cac:Item/cac:ClassifiedTaxCategory/cbc:Percent", default="", namespaces=NS),
            }
        )
    doc.line_sum = total
    lmt = root.find("cac:LegalMonetaryTotal", NS)
    if lmt is not None:
        doc.line_extension = _dec(lmt.find("cbc:LineExtensionAmount", NS))
        doc.tax_exclusive = _dec(lmt.find("cbc:TaxExclusiveAmount", NS))
        doc.tax_inclusive = _dec(lmt.find("cbc:TaxInclusiveAmount", NS))
        doc.payable = _dec(lmt.find("cbc:PayableAmount", NS))
    for tt in root.findall("cac:TaxTotal", NS):
        amount_el = tt.find("cbc:TaxAmount", NS)
        if amount_el is not None and (doc.currency is None or amount_el.get("currencyID") in (None, doc.currency)):
            doc.tax_amount = _dec(amount_el)
            for sub in tt.findall("cac:TaxSubtotal", NS):
                doc.vat_breakdown.append(
                    {
                        "category": sub.findtext("cac:TaxCategory/cbc:ID", default="", namespaces=NS),
                        "percent": sub.findtext("cac:TaxCategory/cbc:Percent", default="", namespaces=NS),
                        "taxable": sub.findtext("cbc:TaxableAmount", default="", namespaces=NS),
                        "amount": sub.findtext("cbc:TaxAmount", default="", namespaces=NS),
                    }
                )
            break
    return doc


def offline_report(doc: ReadDocument, xml: bytes) -> Report | None:
    """The UBL 2.1 schema + EN 16931/CIUS-RO Schematron verdict on an Invoice/CreditNote (None for RASP/CII):
    the same validator the platform runs before filing, so `nok` here is what the platform predicts."""
    if doc.kind in ("rasp", "cii"):
        return None
    return default_validator().validate(xml)


def business_errors(doc: ReadDocument, known_cif: Any, report: Report | None) -> list[str]:
    """What ANAF's asynchronous processing reports; [] means `ok`. The Schematron's errors (warnings and the
    platform's own VAT-rate hints never make a document `nok`), then ANAF's register check of the seller (R6.1)."""
    if doc.kind in ("rasp", "cii"):
        return []
    errors = [f.message for f in report.errors] if report is not None else []
    if not doc.seller_cif or not known_cif(doc.seller_cif):
        errors.append(
            "E: validari globale\n eroare regula: R6.1: CIF-ul vanzatorului nu figureaza in baza de date:"
            f"{doc.seller_cif or ''}"
        )
    return errors


def schema_error(report: Report | None) -> str | None:
    """ANAF refuses an upload that fails the UBL 2.1 schema synchronously, with the first SAX error."""
    if report is None or not report.schema_failed:
        return None
    return report.errors[0].message + " "


def error_file(index: int, cif_emitent: str, errors: list[str]) -> bytes:
    """The `nok` content member (root header, ns mesajEroriFactuta:v1)."""
    body = "".join(
        f'\n    <Error errorMessage="{escape(e, {chr(34): "&quot;", chr(10): "&#xA;"})}"/>' for e in errors
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<header xmlns="mfp:anaf:dgti:efactura:mesajEroriFactuta:v1" Index_incarcare="{index}" '
        f'Cif_emitent="{cif_emitent}">{body}\n</header>'
    ).encode()
