"""The offline validator: representative CIUS-RO documents pass; one mutation per mutation-tested rule fails with that
rule's id; schema errors read like ANAF's SAX text; VAT rates by date; the validare shape."""
from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal

import pytest
from einvoice_examples import AC, Doc, L, P, examples, render
from spvhub_einvoice import default_validator
from spvhub_einvoice.vat import rates_on

EX = examples()
SIMPLE = EX["simple"].decode()


def sub(old: str, new: str, base: str = "simple", count: int = 1) -> Callable[[], bytes]:
    def make() -> bytes:
        text = EX[base].decode()
        assert old in text, old
        return text.replace(old, new, count).encode()
    return make


def doc(**kw: object) -> Callable[[], bytes]:
    return lambda: render(Doc(**kw))  # type: ignore[arg-type]


LINE_VAT = "<cbc:ID>S</cbc:ID><cbc:Percent>21</cbc:Percent>"
# rule id -> a document breaking exactly that rule (others may break too; the id must be among the errors)
MUTATIONS: dict[str, Callable[[], bytes]] = {
    # EN 16931 core
    "BR-02": sub("<cbc:ID>FCT-2026-0001</cbc:ID>", "<cbc:ID></cbc:ID>"),
    "BR-05": sub("<cbc:DocumentCurrencyCode>RON</cbc:DocumentCurrencyCode>",
                 "<cbc:DocumentCurrencyCode></cbc:DocumentCurrencyCode>"),
    "BR-06": sub("<cbc:RegistrationName>ALFA VANZARI SRL</cbc:RegistrationName>",
                 "<cbc:RegistrationName></cbc:RegistrationName>"),
    "BR-07": sub("<cbc:RegistrationName>BETA CUMPARARI SRL</cbc:RegistrationName>",
                 "<cbc:RegistrationName></cbc:RegistrationName>"),
    "BR-09": sub("<cac:Country><cbc:IdentificationCode>RO</cbc:IdentificationCode></cac:Country>", ""),
    "BR-21": sub("<cac:InvoiceLine><cbc:ID>1</cbc:ID>", "<cac:InvoiceLine><cbc:ID></cbc:ID>"),
    "BR-25": sub("<cbc:Name>Servicii contabilitate</cbc:Name>", "<cbc:Name></cbc:Name>"),
    "BR-27": doc(lines=[L("Reducere", Decimal(-1), Decimal("-10.00"))]),
    "BR-CO-25": doc(due=None),
    "BR-33": lambda: render(Doc(acs=[AC(False, Decimal(5), "X")])).replace(
        b"<cbc:AllowanceChargeReason>X</cbc:AllowanceChargeReason>", b""),
    # EN 16931 calculation rules
    "BR-CO-10": sub('<cbc:LineExtensionAmount currencyID="RON">1500.00</cbc:LineExtensionAmount><cbc:TaxExcl',
                    '<cbc:LineExtensionAmount currencyID="RON">1501.00</cbc:LineExtensionAmount><cbc:TaxExcl'),
    "BR-CO-13": sub('<cbc:TaxExclusiveAmount currencyID="RON">1500.00<',
                    '<cbc:TaxExclusiveAmount currencyID="RON">1499.00<'),
    "BR-CO-14": sub('<cac:TaxTotal><cbc:TaxAmount currencyID="RON">315.00<',
                    '<cac:TaxTotal><cbc:TaxAmount currencyID="RON">316.00<'),
    "BR-CO-15": sub('<cbc:TaxInclusiveAmount currencyID="RON">1815.00<',
                    '<cbc:TaxInclusiveAmount currencyID="RON">1814.00<'),
    "BR-CO-16": sub('<cbc:PayableAmount currencyID="RON">1815.00<', '<cbc:PayableAmount currencyID="RON">1800.00<'),
    "BR-CO-09": sub("<cbc:CompanyID>RO8486152</cbc:CompanyID>", "<cbc:CompanyID>8486152</cbc:CompanyID>"),
    "BR-DEC-23": sub('<cbc:LineExtensionAmount currencyID="RON">1500.00</cbc:LineExtensionAmount><cac:Item>',
                     '<cbc:LineExtensionAmount currencyID="RON">1500.001</cbc:LineExtensionAmount><cac:Item>'),
    # code lists
    "BR-CL-01": sub("<cbc:InvoiceTypeCode>380<", "<cbc:InvoiceTypeCode>999<"),
    "BR-CL-23": sub('unitCode="H87"', 'unitCode="BUC"'),
    # VAT categories
    "BR-S-08": sub('<cbc:TaxableAmount currencyID="RON">1500.00<', '<cbc:TaxableAmount currencyID="RON">1400.00<'),
    "BR-S-09": sub('<cbc:TaxAmount currencyID="RON">315.00</cbc:TaxAmount><cac:TaxCategory>',
                   '<cbc:TaxAmount currencyID="RON">310.00</cbc:TaxAmount><cac:TaxCategory>'),
    "BR-S-05": sub(LINE_VAT + "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory>",
                   "<cbc:ID>S</cbc:ID><cbc:Percent>0</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme>"
                   "</cac:ClassifiedTaxCategory>"),
    "BR-AE-02": doc(buyer=P(None, "PERSOANA FIZICA"),
                    lines=[L("Deseuri", Decimal(10), Decimal(1), cat="AE", pct=Decimal(0))],
                    exemption={"AE": ("VATEX-EU-AE", "Taxare inversa")}),
    "BR-AE-10": doc(lines=[L("Deseuri", Decimal(10), Decimal(1), cat="AE", pct=Decimal(0))]),
    "BR-E-10": doc(lines=[L("Scutit", Decimal(1), Decimal(100), cat="E", pct=Decimal(0))]),
    "BR-Z-05": doc(lines=[L("Export", Decimal(1), Decimal(100), cat="Z", pct=Decimal(21))]),
    "BR-IC-11": doc(buyer=P("ATU12345678", "GAMMA GMBH", country="AT", county=None, city="Wien"),
                    lines=[L("Piese", Decimal(1), Decimal(100), cat="K", pct=Decimal(0))],
                    exemption={"K": ("VATEX-EU-IC", "Livrare intracomunitara")}),
    # CIUS-RO
    "BR-RO-001": sub("CIUS-RO:1.0.1</cbc:CustomizationID>", "CIUS-RO:1.0.0</cbc:CustomizationID>"),
    "BR-RO-010": sub("<cbc:ID>FCT-2026-0001</cbc:ID>", "<cbc:ID>FCT-FARA-CIFRE</cbc:ID>"),
    "BR-RO-020": sub("<cbc:InvoiceTypeCode>380<", "<cbc:InvoiceTypeCode>393<"),
    "BR-RO-030": lambda: render(Doc(currency="EUR", tax_rate=Decimal("4.97"))).replace(
        b"<cbc:TaxCurrencyCode>RON</cbc:TaxCurrencyCode>", b""),
    "BR-RO-100": sub("<cbc:CityName>Cluj-Napoca</cbc:CityName><cbc:CountrySubentity>RO-CJ<",
                     "<cbc:CityName>Bucuresti</cbc:CityName><cbc:CountrySubentity>RO-B<"),
    "BR-RO-100#buyer": sub("<cbc:CityName>SECTOR3</cbc:CityName>", "<cbc:CityName>Bucuresti</cbc:CityName>"),
    "BR-RO-110": sub("<cbc:CountrySubentity>RO-CJ<", "<cbc:CountrySubentity>CJ<"),
    "BR-RO-110#buyer": sub("<cbc:CountrySubentity>RO-B<", "<cbc:CountrySubentity>B<"),
    "BR-RO-120": doc(buyer=P(None, "CLIENT FARA COD", legal_id=None)),
    "BR-RO-L150": sub("<cbc:StreetName>Str. Exemplu nr. 1</cbc:StreetName>",
                      "<cbc:StreetName>" + "S" * 151 + "</cbc:StreetName>"),
    "BR-RO-L100": sub("<cbc:Name>Servicii contabilitate</cbc:Name>", "<cbc:Name>" + "N" * 101 + "</cbc:Name>"),
    "BR-RO-Z2": doc(acs=[AC(False, Decimal("10.005"), "Discount")]),
}


@pytest.fixture(scope="module")
def validator():
    v = default_validator()
    v.warm()
    return v


@pytest.mark.parametrize("name", sorted(EX))
def test_representative_documents_pass(validator, name):
    report = validator.validate(EX[name])
    assert report.ok and not report.warnings, [f.message for f in report.findings]
    assert report.validare()["stare"] == "ok"


@pytest.mark.parametrize("rule", sorted(MUTATIONS))
def test_one_mutation_per_rule_fails_with_its_id(validator, rule):
    report = validator.validate(MUTATIONS[rule]())
    assert not report.ok
    code = rule.split("#")[0]
    assert code in report.codes(), [(f.code, f.message[:160]) for f in report.errors]
    finding = next(f for f in report.errors if f.code == code)
    assert finding.message.startswith("E: validari globale  SCHEMATRON   eroare: [")
    assert finding.explanation_ro and finding.explanation_en
    assert finding.field is None or finding.field.startswith("/Invoice")


def test_validare_shape(validator):
    body = validator.validate(MUTATIONS["BR-RO-110"]()).validare()
    assert body["stare"] == "nok" and body["Messages"][0]["message"].startswith("E: validari globale")
    f = next(f for f in body["findings"] if f["code"] == "BR-RO-110")
    assert f["field"] == "/Invoice" and f["business_term"] == "BT-39" and f["source"] == "cius-ro"
    assert "ISO 3166-2:RO" in f["explanation_ro"] and "ISO 3166-2:RO" in f["explanation_en"]
    assert set(f) >= {"code", "field", "message", "explanation_ro", "explanation_en", "severity"}


def test_schema_and_xml_errors_read_like_anaf(validator):
    bad = SIMPLE.replace("<cbc:PayableAmount", "<cbc:Note>x</cbc:Note><cbc:PayableAmount").encode()
    r = validator.validate(bad)
    assert r.codes() == ["SCHEMA"] and r.schema_failed
    assert r.errors[0].message.startswith("Fisierul transmis nu este valid. org.xml.sax.SAXParseException; lineNumber:")
    r = validator.validate(b"<Invoice1/>")
    assert "cvc-elt.1.a: Cannot find the declaration of element 'Invoice1'." in r.errors[0].message
    r = validator.validate(b"<Invoice><unclosed></Invoice>")
    assert r.codes() == ["SCHEMA"] and r.document_type is None
    r = validator.validate(b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>')
    assert not r.ok and "passwd" not in r.errors[0].message.split("Detaliu")[0][-40:]


def test_vat_rates_by_invoice_date(validator):
    assert rates_on(date(2025, 7, 31)).standard == 19
    assert rates_on(date(2025, 8, 1)).all == (21, 11, 9)
    assert rates_on(date(2026, 7, 31)).all == (21, 11, 9)
    assert rates_on(date(2026, 8, 1)).all == (21, 11)
    old_rate = render(Doc(issue="2026-03-06", lines=[L("x", Decimal(1), Decimal(100), pct=Decimal(19))]))
    r = validator.validate(old_rate)
    assert r.ok and [f.code for f in r.warnings] == ["SPVHUB-VAT-01"]
    assert "21 %" in r.warnings[0].explanation_ro and "1 August 2025" not in r.warnings[0].explanation_ro
    housing_late = render(Doc(issue="2026-08-03", due="2026-09-01",
                              lines=[L("Locuinta", Decimal(1), Decimal(1000), pct=Decimal(9))]))
    r = validator.validate(housing_late)
    assert r.ok and [f.code for f in r.warnings] == ["SPVHUB-VAT-02"] and "31.07.2026" in r.warnings[0].explanation_ro
    before = render(Doc(issue="2025-07-10", due="2025-08-09",
                        lines=[L("x", Decimal(1), Decimal(100), pct=Decimal(19))]))
    assert validator.validate(before).findings == ()
    r = validator.validate(render(Doc(issue="2025-07-10", due="2025-08-09",
                                      lines=[L("x", Decimal(1), Decimal(100), pct=Decimal(21))])))
    assert [f.code for f in r.warnings] == ["SPVHUB-VAT-01"] and "19 %" in r.warnings[0].explanation_ro


def test_credit_note_and_concurrent_use(validator):
    import concurrent.futures

    docs = [EX["credit_note"], MUTATIONS["BR-CO-15"](), EX["foreign_currency"]] * 4
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(validator.validate, docs))
    assert [r.ok for r in results] == [True, False, True] * 4
    assert results[0].document_type == "credit_note"
