"""Representative CIUS-RO documents written for these tests, one per feature the CEN EN 16931 UBL examples exercise:
several VAT categories with document-level allowances and charges, prepaid amount and rounding, a foreign currency
with the VAT in RON, a credit note, reverse charge, exemption, an intra-community supply, invoice periods and line
allowances. Totals are computed here so each example is consistent by construction."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from xml.sax.saxutils import escape

CIUS_RO = "urn:cen.eu:en16931:2017#compliant#urn:efactura.mfinante.ro:CIUS-RO:1.0.1"
NS_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
NS_CREDIT = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
NS_CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
NS_CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
D0 = Decimal(0)


def m(v: Decimal) -> Decimal:
    return v.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@dataclass
class P:
    vat: str | None  # RO12345678, DE123456789 ... or None
    name: str
    country: str = "RO"
    county: str | None = "RO-CJ"
    city: str = "Cluj-Napoca"
    legal_id: str | None = None


@dataclass
class L:
    name: str
    qty: Decimal
    price: Decimal
    cat: str = "S"
    pct: Decimal = Decimal(21)
    unit: str = "H87"
    allowance: Decimal = D0  # line-level allowance amount
    base_qty: Decimal | None = None

    @property
    def net(self) -> Decimal:
        return m(self.qty * self.price) - self.allowance


@dataclass
class AC:
    charge: bool
    amount: Decimal
    reason: str
    cat: str = "S"
    pct: Decimal = Decimal(21)


@dataclass
class Doc:
    number: str = "FCT-2026-0001"
    issue: str = "2026-03-06"
    due: str | None = "2026-04-05"
    type_code: str = "380"
    credit: bool = False
    currency: str = "RON"
    tax_rate: Decimal | None = None  # RON per unit when currency != RON
    seller: P = field(default_factory=lambda: P("RO8486152", "ALFA VANZARI SRL", legal_id="J12/1234/2010"))
    buyer: P = field(default_factory=lambda: P("RO14399840", "BETA CUMPARARI SRL", county="RO-B", city="SECTOR3"))
    lines: list[L] = field(default_factory=lambda: [L("Servicii contabilitate", Decimal(1), Decimal("1500.00"))])
    acs: list[AC] = field(default_factory=list)
    prepaid: Decimal = D0
    rounding: Decimal = D0
    note: str | None = None
    period: tuple[str, str] | None = None
    delivery_country: str | None = None
    delivery_date: str | None = None
    preceding: str | None = None
    exemption: dict[str, tuple[str, str]] = field(default_factory=dict)  # category -> (code, text)
    payment_terms: str | None = None


def _party(p: P, role: str) -> str:
    county = f"<cbc:CountrySubentity>{p.county}</cbc:CountrySubentity>" if p.county else ""
    tax = (f"<cac:PartyTaxScheme><cbc:CompanyID>{p.vat}</cbc:CompanyID><cac:TaxScheme><cbc:ID>VAT</cbc:ID>"
           "</cac:TaxScheme></cac:PartyTaxScheme>") if p.vat else ""
    legal = f"<cbc:CompanyID>{escape(p.legal_id)}</cbc:CompanyID>" if p.legal_id else ""
    return (f"<cac:{role}><cac:Party><cac:PostalAddress><cbc:StreetName>Str. Exemplu nr. 1</cbc:StreetName>"
            f"<cbc:CityName>{escape(p.city)}</cbc:CityName>{county}<cac:Country><cbc:IdentificationCode>{p.country}"
            f"</cbc:IdentificationCode></cac:Country></cac:PostalAddress>{tax}<cac:PartyLegalEntity>"
            f"<cbc:RegistrationName>{escape(p.name)}</cbc:RegistrationName>{legal}</cac:PartyLegalEntity>"
            f"</cac:Party></cac:{role}>")


def _cat(tag: str, cat: str, pct: Decimal, exemption: tuple[str, str] | None = None) -> str:
    pct_xml = f"<cbc:Percent>{pct}</cbc:Percent>" if cat != "O" else ""
    ex = (f"<cbc:TaxExemptionReasonCode>{exemption[0]}</cbc:TaxExemptionReasonCode>"
          f"<cbc:TaxExemptionReason>{escape(exemption[1])}</cbc:TaxExemptionReason>") if exemption else ""
    return (f"<cac:{tag}><cbc:ID>{cat}</cbc:ID>{pct_xml}{ex}<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme>"
            f"</cac:{tag}>")


def render(d: Doc) -> bytes:
    cur = d.currency
    root = "CreditNote" if d.credit else "Invoice"
    ns = NS_CREDIT if d.credit else NS_INVOICE
    groups: dict[tuple[str, Decimal], Decimal] = {}
    for ln in d.lines:
        groups[(ln.cat, ln.pct)] = groups.get((ln.cat, ln.pct), D0) + ln.net
    for ac in d.acs:
        groups[(ac.cat, ac.pct)] = groups.get((ac.cat, ac.pct), D0) + (ac.amount if ac.charge else -ac.amount)
    line_total = sum((ln.net for ln in d.lines), D0)
    allowances = sum((a.amount for a in d.acs if not a.charge), D0)
    charges = sum((a.amount for a in d.acs if a.charge), D0)
    tax_excl = line_total - allowances + charges
    breakdown = [(c, p, t, m(t * p / 100)) for (c, p), t in groups.items()]
    vat = sum((b[3] for b in breakdown), D0)
    incl = tax_excl + vat
    payable = incl - d.prepaid + d.rounding
    x = [f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{ns}" xmlns:cac="{NS_CAC}" xmlns:cbc="{NS_CBC}">',
         f"<cbc:CustomizationID>{CIUS_RO}</cbc:CustomizationID><cbc:ID>{d.number}</cbc:ID>",
         f"<cbc:IssueDate>{d.issue}</cbc:IssueDate>"]
    if d.due and not d.credit:
        x.append(f"<cbc:DueDate>{d.due}</cbc:DueDate>")
    x.append(f"<cbc:{'CreditNoteTypeCode' if d.credit else 'InvoiceTypeCode'}>{d.type_code}"
             f"</cbc:{'CreditNoteTypeCode' if d.credit else 'InvoiceTypeCode'}>")
    if d.note:
        x.append(f"<cbc:Note>{escape(d.note)}</cbc:Note>")
    x.append(f"<cbc:DocumentCurrencyCode>{cur}</cbc:DocumentCurrencyCode>")
    if cur != "RON":
        x.append("<cbc:TaxCurrencyCode>RON</cbc:TaxCurrencyCode>")
    if d.period:
        x.append(f"<cac:InvoicePeriod><cbc:StartDate>{d.period[0]}</cbc:StartDate><cbc:EndDate>{d.period[1]}"
                 "</cbc:EndDate></cac:InvoicePeriod>")
    if d.preceding:
        x.append(f"<cac:BillingReference><cac:InvoiceDocumentReference><cbc:ID>{d.preceding}</cbc:ID>"
                 "</cac:InvoiceDocumentReference></cac:BillingReference>")
    x.append(_party(d.seller, "AccountingSupplierParty"))
    x.append(_party(d.buyer, "AccountingCustomerParty"))
    if d.delivery_country or d.delivery_date:
        x.append("<cac:Delivery>")
        if d.delivery_date:
            x.append(f"<cbc:ActualDeliveryDate>{d.delivery_date}</cbc:ActualDeliveryDate>")
        if d.delivery_country:
            x.append("<cac:DeliveryLocation><cac:Address><cbc:StreetName>Ringstrasse 1</cbc:StreetName>"
                     "<cbc:CityName>Wien</cbc:CityName><cbc:CountrySubentity>AT-9</cbc:CountrySubentity><cac:Country>"
                     f"<cbc:IdentificationCode>{d.delivery_country}</cbc:IdentificationCode></cac:Country>"
                     "</cac:Address></cac:DeliveryLocation>")
        x.append("</cac:Delivery>")
    x.append("<cac:PaymentMeans><cbc:PaymentMeansCode>30</cbc:PaymentMeansCode>")
    if d.credit and d.due:
        x.append(f"<cbc:PaymentDueDate>{d.due}</cbc:PaymentDueDate>")
    x.append("<cac:PayeeFinancialAccount><cbc:ID>RO49AAAA1B31007593840000</cbc:ID></cac:PayeeFinancialAccount>"
             "</cac:PaymentMeans>")
    if d.payment_terms:
        x.append(f"<cac:PaymentTerms><cbc:Note>{escape(d.payment_terms)}</cbc:Note></cac:PaymentTerms>")
    for ac in d.acs:
        x.append(f"<cac:AllowanceCharge><cbc:ChargeIndicator>{'true' if ac.charge else 'false'}</cbc:ChargeIndicator>"
                 f"<cbc:AllowanceChargeReason>{escape(ac.reason)}</cbc:AllowanceChargeReason>"
                 f'<cbc:Amount currencyID="{cur}">{ac.amount}</cbc:Amount>'
                 f"{_cat('TaxCategory', ac.cat, ac.pct, d.exemption.get(ac.cat))}</cac:AllowanceCharge>")
    x.append(f'<cac:TaxTotal><cbc:TaxAmount currencyID="{cur}">{vat}</cbc:TaxAmount>')
    for c, p, t, a in breakdown:
        x.append(f'<cac:TaxSubtotal><cbc:TaxableAmount currencyID="{cur}">{t}</cbc:TaxableAmount>'
                 f'<cbc:TaxAmount currencyID="{cur}">{a}</cbc:TaxAmount>{_cat("TaxCategory", c, p, d.exemption.get(c))}'
                 "</cac:TaxSubtotal>")
    x.append("</cac:TaxTotal>")
    if cur != "RON":
        x.append(f'<cac:TaxTotal><cbc:TaxAmount currencyID="RON">{m(vat * (d.tax_rate or 1))}</cbc:TaxAmount>'
                 "</cac:TaxTotal>")
    x.append(f'<cac:LegalMonetaryTotal><cbc:LineExtensionAmount currencyID="{cur}">{line_total}'
             f'</cbc:LineExtensionAmount><cbc:TaxExclusiveAmount currencyID="{cur}">{tax_excl}</cbc:TaxExclusiveAmount>'
             f'<cbc:TaxInclusiveAmount currencyID="{cur}">{incl}</cbc:TaxInclusiveAmount>')
    if allowances:
        x.append(f'<cbc:AllowanceTotalAmount currencyID="{cur}">{allowances}</cbc:AllowanceTotalAmount>')
    if charges:
        x.append(f'<cbc:ChargeTotalAmount currencyID="{cur}">{charges}</cbc:ChargeTotalAmount>')
    if d.prepaid:
        x.append(f'<cbc:PrepaidAmount currencyID="{cur}">{d.prepaid}</cbc:PrepaidAmount>')
    if d.rounding:
        x.append(f'<cbc:PayableRoundingAmount currencyID="{cur}">{d.rounding}</cbc:PayableRoundingAmount>')
    x.append(f'<cbc:PayableAmount currencyID="{cur}">{payable}</cbc:PayableAmount></cac:LegalMonetaryTotal>')
    tag, qtag = ("CreditNoteLine", "CreditedQuantity") if d.credit else ("InvoiceLine", "InvoicedQuantity")
    for i, ln in enumerate(d.lines, 1):
        la = ""
        if ln.allowance:
            la = (f"<cac:AllowanceCharge><cbc:ChargeIndicator>false</cbc:ChargeIndicator>"
                  f"<cbc:AllowanceChargeReason>Discount</cbc:AllowanceChargeReason>"
                  f'<cbc:Amount currencyID="{cur}">{ln.allowance}</cbc:Amount></cac:AllowanceCharge>')
        base = f'<cbc:BaseQuantity unitCode="{ln.unit}">{ln.base_qty}</cbc:BaseQuantity>' if ln.base_qty else ""
        x.append(f'<cac:{tag}><cbc:ID>{i}</cbc:ID><cbc:{qtag} unitCode="{ln.unit}">{ln.qty}</cbc:{qtag}>'
                 f'<cbc:LineExtensionAmount currencyID="{cur}">{ln.net}</cbc:LineExtensionAmount>{la}'
                 f"<cac:Item><cbc:Name>{escape(ln.name)}</cbc:Name>{_cat('ClassifiedTaxCategory', ln.cat, ln.pct)}"
                 f'</cac:Item><cac:Price><cbc:PriceAmount currencyID="{cur}">{ln.price}</cbc:PriceAmount>{base}'
                 f"</cac:Price></cac:{tag}>")
    x.append(f"</{root}>")
    return "".join(x).encode("utf-8")


def examples() -> dict[str, bytes]:
    """name -> a valid CIUS-RO document."""
    out: dict[str, bytes] = {}
    out["simple"] = render(Doc())
    out["categories_allowances_charges"] = render(Doc(
        lines=[L("Hartie A4", Decimal(10), Decimal("24.90")), L("Carte", Decimal(2), Decimal("45.00"), pct=Decimal(11)),
               L("Export servicii", Decimal(1), Decimal(300), cat="Z", pct=D0),
               L("Scutit", Decimal(1), Decimal(100), cat="E", pct=D0)],
        acs=[AC(False, Decimal("10.00"), "Discount fidelitate"), AC(True, Decimal("25.00"), "Transport")],
        exemption={"E": ("VATEX-EU-132", "Scutit conform art. 292")}, prepaid=Decimal("100.00"),
        rounding=Decimal("0.01"), note="Factura cu reduceri si taxe suplimentare"))
    out["foreign_currency"] = render(Doc(currency="EUR", tax_rate=Decimal("4.9770"),
                                         lines=[L("Consultanta", Decimal(8), Decimal("120.00"), unit="HUR")]))
    out["credit_note"] = render(Doc(credit=True, type_code="381", number="CN-2026-7", preceding="FCT-2026-0001",
                                    lines=[L("Retur marfa", Decimal(2), Decimal("389.00"))]))
    out["reverse_charge"] = render(Doc(
        lines=[L("Deseuri feroase", Decimal(1000), Decimal("1.20"), cat="AE", pct=D0, unit="KGM")],
        exemption={"AE": ("VATEX-EU-AE", "Taxare inversa")}))
    out["intra_community"] = render(Doc(
        buyer=P("ATU12345678", "GAMMA GMBH", country="AT", county=None, city="Wien"),
        lines=[L("Piese schimb", Decimal(4), Decimal("615.50"), cat="K", pct=D0)],
        exemption={"K": ("VATEX-EU-IC", "Livrare intracomunitara scutita")}, delivery_country="AT",
        delivery_date="2026-03-05"))
    out["period_line_allowance"] = render(Doc(
        period=("2026-02-01", "2026-02-28"), due=None, payment_terms="Plata in 30 de zile",
        lines=[L("Chirie birou", Decimal(1), Decimal("3200.00"), unit="MON", allowance=Decimal("200.00")),
               L("Motorina", Decimal("150.5"), Decimal("7.45"), unit="LTR", base_qty=Decimal(1))]))
    out["housing_9_percent_before_august_2026"] = render(Doc(
        issue="2026-07-15", due="2026-08-14", lines=[L("Locuinta", Decimal(1), Decimal("300000.00"), pct=Decimal(9))]))
    return out
