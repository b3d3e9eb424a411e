"""CIUS-RO invoices built like real ones (element order, prefixes, currencyID on every amount) for the PDF tests:
a RON invoice with document and line allowances/charges, a EUR and a SEK invoice with the VAT also in RON, a
credit note referring to two invoices, and hostile documents."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

CIUS_RO = "urn:cen.eu:en16931:2017#compliant#urn:efactura.mfinante.ro:CIUS-RO:1.0.1"
NS_CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
NS_CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"


def e(text: object) -> str:
    return escape(str(text))


@dataclass
class P:
    name: str
    vat: str | None = None
    tax_id: str | None = None
    legal_id: str | None = None
    street: str = "Str. Memorandumului nr. 28"
    city: str = "Cluj-Napoca"
    county: str | None = "RO-CJ"
    zone: str = "400114"
    country: str = "RO"
    trade_name: str | None = None
    email: str | None = None

    def xml(self, role: str) -> str:
        out = [f"<cac:{role}><cac:Party>"]
        if self.trade_name:
            out.append(f"<cac:PartyName><cbc:Name>{e(self.trade_name)}</cbc:Name></cac:PartyName>")
        out.append(f"<cac:PostalAddress><cbc:StreetName>{e(self.street)}</cbc:StreetName>"
                   f"<cbc:CityName>{e(self.city)}</cbc:CityName><cbc:PostalZone>{e(self.zone)}</cbc:PostalZone>")
        if self.county:
            out.append(f"<cbc:CountrySubentity>{e(self.county)}</cbc:CountrySubentity>")
        out.append(f"<cac:Country><cbc:IdentificationCode>{self.country}</cbc:IdentificationCode></cac:Country>"
                   "</cac:PostalAddress>")
        if self.vat:
            out.append(f"<cac:PartyTaxScheme><cbc:CompanyID>{e(self.vat)}</cbc:CompanyID>"
                       "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>")
        if self.tax_id:
            out.append(f"<cac:PartyTaxScheme><cbc:CompanyID>{e(self.tax_id)}</cbc:CompanyID>"
                       "<cac:TaxScheme/></cac:PartyTaxScheme>")
        out.append(f"<cac:PartyLegalEntity><cbc:RegistrationName>{e(self.name)}</cbc:RegistrationName>")
        if self.legal_id:
            out.append(f"<cbc:CompanyID>{e(self.legal_id)}</cbc:CompanyID>")
        out.append("</cac:PartyLegalEntity>")
        if self.email:
            out.append(f"<cac:Contact><cbc:ElectronicMail>{e(self.email)}</cbc:ElectronicMail></cac:Contact>")
        out.append(f"</cac:Party></cac:{role}>")
        return "".join(out)


def ac(charge: bool, amount: str, reason: str, code: str, cur: str, base: str | None = None,
       pct: str | None = None, cat: str | None = None, vat: str | None = None) -> str:
    out = [f"<cac:AllowanceCharge><cbc:ChargeIndicator>{'true' if charge else 'false'}</cbc:ChargeIndicator>",
           f"<cbc:AllowanceChargeReasonCode>{code}</cbc:AllowanceChargeReasonCode>",
           f"<cbc:AllowanceChargeReason>{e(reason)}</cbc:AllowanceChargeReason>"]
    if pct:
        out.append(f"<cbc:MultiplierFactorNumeric>{pct}</cbc:MultiplierFactorNumeric>")
    out.append(f'<cbc:Amount currencyID="{cur}">{amount}</cbc:Amount>')
    if base:
        out.append(f'<cbc:BaseAmount currencyID="{cur}">{base}</cbc:BaseAmount>')
    if cat:
        out.append(f"<cac:TaxCategory><cbc:ID>{cat}</cbc:ID><cbc:Percent>{vat}</cbc:Percent>"
                   "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory>")
    out.append("</cac:AllowanceCharge>")
    return "".join(out)


@dataclass
class L:
    name: str
    qty: str
    unit: str
    price: str
    net: str
    cat: str = "S"
    pct: str = "21"
    base_qty: str | None = None
    allowances: list[str] = field(default_factory=list)
    description: str | None = None
    seller_id: str | None = None
    gross: str | None = None
    discount: str | None = None

    def xml(self, i: int, cur: str, credit: bool) -> str:
        tag, qty_tag = ("CreditNoteLine", "CreditedQuantity") if credit else ("InvoiceLine", "InvoicedQuantity")
        out = [f"<cac:{tag}><cbc:ID>{i}</cbc:ID>",
               f'<cbc:{qty_tag} unitCode="{self.unit}">{self.qty}</cbc:{qty_tag}>',
               f'<cbc:LineExtensionAmount currencyID="{cur}">{self.net}</cbc:LineExtensionAmount>',
               *self.allowances, "<cac:Item>"]
        if self.description:
            out.append(f"<cbc:Description>{e(self.description)}</cbc:Description>")
        out.append(f"<cbc:Name>{e(self.name)}</cbc:Name>")
        if self.seller_id:
            out.append(f"<cac:SellersItemIdentification><cbc:ID>{e(self.seller_id)}</cbc:ID>"
                       "</cac:SellersItemIdentification>")
        out.append(f"<cac:ClassifiedTaxCategory><cbc:ID>{self.cat}</cbc:ID><cbc:Percent>{self.pct}</cbc:Percent>"
                   "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory></cac:Item>")
        out.append(f'<cac:Price><cbc:PriceAmount currencyID="{cur}">{self.price}</cbc:PriceAmount>')
        if self.base_qty:
            out.append(f'<cbc:BaseQuantity unitCode="{self.unit}">{self.base_qty}</cbc:BaseQuantity>')
        if self.gross:
            out.append(f'<cac:AllowanceCharge><cbc:ChargeIndicator>false</cbc:ChargeIndicator>'
                       f'<cbc:Amount currencyID="{cur}">{self.discount}</cbc:Amount>'
                       f'<cbc:BaseAmount currencyID="{cur}">{self.gross}</cbc:BaseAmount></cac:AllowanceCharge>')
        out.append(f"</cac:Price></cac:{tag}>")
        return "".join(out)


def sub(cur: str, taxable: str, amount: str, cat: str, pct: str, reason: str | None = None,
        code: str | None = None) -> str:
    why = (f"<cbc:TaxExemptionReasonCode>{code}</cbc:TaxExemptionReasonCode>" if code else "") + \
          (f"<cbc:TaxExemptionReason>{e(reason)}</cbc:TaxExemptionReason>" if reason else "")
    return (f'<cac:TaxSubtotal><cbc:TaxableAmount currencyID="{cur}">{taxable}</cbc:TaxableAmount>'
            f'<cbc:TaxAmount currencyID="{cur}">{amount}</cbc:TaxAmount><cac:TaxCategory><cbc:ID>{cat}</cbc:ID>'
            f"<cbc:Percent>{pct}</cbc:Percent>{why}<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme>"
            "</cac:TaxCategory></cac:TaxSubtotal>")


def document(*, number: str, issue: str, seller: P, buyer: P, lines: list[L], vat: str, subs: list[str],
             totals: dict[str, str], currency: str = "RON", tax_currency: str | None = None,
             vat_ron: str | None = None, due: str | None = "2026-03-31", type_code: str | None = None,
             credit: bool = False, notes: tuple[str, ...] = (), refs: tuple[tuple[str, str | None], ...] = (),
             allowances: tuple[str, ...] = (), iban: str = "RO49AAAA1B31007593840000", order: str | None = None,
             extra_lines_xml: str = "", accounting_vat_first: bool = False) -> bytes:
    root = "CreditNote" if credit else "Invoice"
    cur = currency
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n',
           f'<{root} xmlns="urn:oasis:names:specification:ubl:schema:xsd:{root}-2" '
           f'xmlns:cac="{NS_CAC}" xmlns:cbc="{NS_CBC}">',
           f"<cbc:CustomizationID>{CIUS_RO}</cbc:CustomizationID>", f"<cbc:ID>{e(number)}</cbc:ID>",
           f"<cbc:IssueDate>{issue}</cbc:IssueDate>"]
    if due and not credit:
        out.append(f"<cbc:DueDate>{due}</cbc:DueDate>")
    out.append(f"<cbc:CreditNoteTypeCode>{type_code or '381'}</cbc:CreditNoteTypeCode>" if credit else
               f"<cbc:InvoiceTypeCode>{type_code or '380'}</cbc:InvoiceTypeCode>")
    out += [f"<cbc:Note>{e(n)}</cbc:Note>" for n in notes]
    out.append(f"<cbc:DocumentCurrencyCode>{cur}</cbc:DocumentCurrencyCode>")
    if tax_currency:
        out.append(f"<cbc:TaxCurrencyCode>{tax_currency}</cbc:TaxCurrencyCode>")
    if order:
        out.append(f"<cac:OrderReference><cbc:ID>{e(order)}</cbc:ID></cac:OrderReference>")
    for ref, when in refs:
        out.append("<cac:BillingReference><cac:InvoiceDocumentReference>"
                   f"<cbc:ID>{e(ref)}</cbc:ID>" + (f"<cbc:IssueDate>{when}</cbc:IssueDate>" if when else "")
                   + "</cac:InvoiceDocumentReference></cac:BillingReference>")
    out += [seller.xml("AccountingSupplierParty"), buyer.xml("AccountingCustomerParty")]
    out.append("<cac:PaymentMeans><cbc:PaymentMeansCode>30</cbc:PaymentMeansCode>")
    if credit and due:
        out.append(f"<cbc:PaymentDueDate>{due}</cbc:PaymentDueDate>")
    out.append(f"<cac:PayeeFinancialAccount><cbc:ID>{e(iban)}</cbc:ID></cac:PayeeFinancialAccount>"
               "</cac:PaymentMeans>")
    out += list(allowances)
    totals_xml = [f'<cac:TaxTotal><cbc:TaxAmount currencyID="{cur}">{vat}</cbc:TaxAmount>{"".join(subs)}'
                  "</cac:TaxTotal>"]
    if vat_ron is not None:
        totals_xml.append(f'<cac:TaxTotal><cbc:TaxAmount currencyID="{tax_currency}">{vat_ron}</cbc:TaxAmount>'
                          "</cac:TaxTotal>")
    out += reversed(totals_xml) if accounting_vat_first else totals_xml
    out.append("<cac:LegalMonetaryTotal>")
    for tag in ("LineExtensionAmount", "TaxExclusiveAmount", "TaxInclusiveAmount", "AllowanceTotalAmount",
                "ChargeTotalAmount", "PrepaidAmount", "PayableRoundingAmount", "PayableAmount"):
        if tag in totals:
            out.append(f'<cbc:{tag} currencyID="{cur}">{totals[tag]}</cbc:{tag}>')
    out.append("</cac:LegalMonetaryTotal>")
    out += [ln.xml(i, cur, credit) for i, ln in enumerate(lines, 1)]
    out.append(extra_lines_xml)
    out.append(f"</{root}>")
    return "".join(out).encode()


SELLER = P("Papetăria Ștefan SRL", vat="RO12340170", legal_id="J12/3456/2015", email="facturi@papetaria.ro")
BUYER = P("Cumpărător Țuică SA", vat="RO14399840", legal_id="RO14399840", street="Bd. Unirii nr. 10, bl. A2",
          city="SECTOR3", county="RO-B", zone="030823")


def ron_with_allowances(*, with_document_allowance: bool = True, **kw: Any) -> bytes:
    """Lines 330,77; a 21,20 commercial discount on the document; 309,57 without VAT; prepaid and rounding."""
    lines = [
        L("Hârtie copiator A4 80g", "10", "H87", "24.90", "224.10", seller_id="HA4-80",
          allowances=[ac(False, "24.90", "Discount volum", "95", "RON", base="249.00", pct="10")]),
        L("Cafea boabe", "2.5", "KGM", "7.6453", "19.11", pct="11"),
        L("Consultanță IT", "1", "HUR", "52.40", "56.31",
          allowances=[ac(True, "3.91", "Deplasare", "FC", "RON")]),
        L("Șuruburi M6x40", "250", "H87", "12.50", "31.25", base_qty="100", description="Zincate, cutie de 100"),
    ]
    return document(
        number="PAP-2026-00042", issue="2026-03-01", seller=SELLER, buyer=BUYER, lines=lines,
        allowances=(ac(False, "21.20", "Reducere comercială", "95", "RON", cat="S", vat="21"),)
        if with_document_allowance else (),
        vat="63.10", subs=[sub("RON", "290.46", "61.00", "S", "21"), sub("RON", "19.11", "2.10", "S", "11")],
        totals={"LineExtensionAmount": "330.77", "TaxExclusiveAmount": "309.57", "TaxInclusiveAmount": "372.67",
                "AllowanceTotalAmount": "21.20", "PrepaidAmount": "100.00", "PayableRoundingAmount": "0.33",
                "PayableAmount": "273.00"},
        notes=("Marfa se livrează la sediul cumpărătorului.",), order="CMD-7781", **kw)


def eur_with_ron_vat() -> bytes:
    lines = [L("Chirie spațiu birou martie 2026", "1", "MON", "1250.00", "1250.00"),
             L("Utilități (energie electrică)", "412.5", "KWH", "0.3120", "128.70")]
    return document(
        number="CH-2026/03", issue="2026-03-02", currency="EUR", tax_currency="RON", vat_ron="1477.47",
        seller=P("Imobiliara Nord SRL", vat="RO31825555", legal_id="J40/12345/2013", street="Str. Fabricii nr. 3",
                 city="SECTOR6", county="RO-B", zone="060821"),
        buyer=SELLER, lines=lines, vat="289.53", subs=[sub("EUR", "1378.70", "289.53", "S", "21")],
        totals={"LineExtensionAmount": "1378.70", "TaxExclusiveAmount": "1378.70", "TaxInclusiveAmount": "1668.23",
                "PayableAmount": "1668.23"},
        notes=("Curs BNR 5,1030 lei/EUR din 27.02.2026.",))


def sek_with_ron_vat() -> bytes:
    lines = [L("Dezvoltare software (ore)", "3", "HUR", "395.2367", "1185.71")]
    return document(
        number="NSD 2026 118", issue="2026-07-15", due="2026-08-14", currency="SEK", tax_currency="RON",
        vat_ron="108.36", seller=P("Nordic Soft Dev SRL", vat="RO40111222", legal_id="J2019001234129",
                                   street="Str. Avram Iancu 5", city="Iași", county="RO-IS", zone="700000"),
        buyer=P("Svensk Handel AB", vat="SE556677889901", legal_id="556677-8899", street="Storgatan 1",
                city="Stockholm", county=None, zone="111 22", country="SE"),
        lines=lines, vat="249.00", subs=[sub("SEK", "1185.71", "249.00", "S", "21")],
        totals={"LineExtensionAmount": "1185.71", "TaxExclusiveAmount": "1185.71", "TaxInclusiveAmount": "1434.71",
                "PayableAmount": "1434.71"}, iban="RO66BACX0000001234567890")


def credit_note_two_refs() -> bytes:
    lines = [L("Cherestea rășinoase", "2.4", "MTQ", "850.00", "2040.00", cat="AE", pct="0"),
             L("Taxă de timbru verde", "1", "C62", "12.00", "12.00", cat="E", pct="0"),
             L("Motorină", "40", "LTR", "7.45", "298.00")]
    return document(
        number="STORNO-17", issue="2026-04-10", due="2026-05-10", credit=True,
        refs=(("PAP-2026-00042", "2026-03-01"), ("PAP-2026-00057", "2026-03-15"), ("PAP-2026-00061", None)),
        seller=P("Lemn Bun SRL", vat="RO12340170", legal_id="12340170", street="Str. Pădurii 7", city="Bistrița",
                 county="RO-BN", zone="420001"),
        buyer=P("Construct Vest SRL", tax_id="35791113", legal_id="J2024012345001", street="Calea Aradului 3",
                city="Timișoara", county="RO-TM", zone="300001"),
        lines=lines, vat="62.58",
        subs=[sub("RON", "2040.00", "0.00", "AE", "0", code="VATEX-EU-AE", reason="Taxare inversă"),
              sub("RON", "12.00", "0.00", "E", "0", code="VATEX-EU-132"),
              sub("RON", "298.00", "62.58", "S", "21")],
        totals={"LineExtensionAmount": "2350.00", "TaxExclusiveAmount": "2350.00", "TaxInclusiveAmount": "2412.58",
                "PayableAmount": "2412.58"})


def hostile(line_count: int = 50_000) -> bytes:
    """A 100,000-digit amount, a 100,000-character invoice number, a name without spaces, and `line_count`
    lines: each field is capped and the lines past the cap are only counted and summed."""
    big = "9" * 100_000
    one = ('<cac:InvoiceLine><cbc:ID>{i}</cbc:ID><cbc:InvoicedQuantity unitCode="H87">1</cbc:InvoicedQuantity>'
           '<cbc:LineExtensionAmount currencyID="RON">1.00</cbc:LineExtensionAmount><cac:Item><cbc:Name>Articol {i}'
           '</cbc:Name><cac:ClassifiedTaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>21</cbc:Percent><cac:TaxScheme>'
           '<cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory></cac:Item><cac:Price>'
           '<cbc:PriceAmount currencyID="RON">1.00</cbc:PriceAmount></cac:Price></cac:InvoiceLine>')
    extra = "".join(one.format(i=i) for i in range(2, line_count + 1))
    return document(
        number="X" * 100_000, issue="2026-03-01",
        seller=P("S" * 5000, vat="RO12340170", street="Str. " + "Lungă" * 4000),
        buyer=BUYER, vat="0.21", subs=[sub("RON", "1.00", "0.21", "S", "21")],
        lines=[L("Articol 1", "1", "H87", "1.00", "1.00")],
        totals={"LineExtensionAmount": str(line_count) + ".00", "TaxExclusiveAmount": big,
                "TaxInclusiveAmount": "1E+30", "PayableAmount": "Infinity"},
        iban="RO49AAAA1B31007593840000" * 200, notes=("N" * 100_000,) * 30, extra_lines_xml=extra)


def heaviest_lines(count: int = 600) -> bytes:
    """Every line at the caps (name, description, note, item code, eight allowances with long reasons) and not
    tying to its amount: each row must still fit on a page and the warnings stay one note."""
    words = " ".join(["cuvânt"] * 400)
    allowances = [ac(i % 2 == 1, "1.00", words, "95", "RON") for i in range(12)]
    lines = [L(words, "1", "H87", "10.00", "1.00", description=words, seller_id="C" * 500, allowances=allowances)
             for _ in range(count)]
    xml = document(number="GREU-1", issue="2026-03-01", seller=SELLER, buyer=BUYER, lines=lines, vat="0.21",
                   subs=[sub("RON", "1.00", "0.21", "S", "21")],
                   totals={"LineExtensionAmount": f"{count}.00", "TaxExclusiveAmount": f"{count}.00",
                           "TaxInclusiveAmount": f"{count}.21", "PayableAmount": f"{count}.21"})
    return xml.replace(b"<cbc:LineExtensionAmount currencyID=\"RON\">1.00</cbc:LineExtensionAmount>",
                       b"<cbc:Note>" + words.encode() + b"</cbc:Note>"
                       b"<cbc:LineExtensionAmount currencyID=\"RON\">1.00</cbc:LineExtensionAmount>")
