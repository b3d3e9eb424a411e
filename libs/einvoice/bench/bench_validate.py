"""Offline validation speed (prints, not a test): a 100-line CIUS-RO invoice through the UBL 2.1 schema, the
EN 16931 + CIUS-RO Schematron and the VAT-rate checks; median and p99 latency and documents per second on one core.

    .venv/bin/python libs/einvoice/bench/bench_validate.py [--lines 100] [--runs 300]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from decimal import ROUND_HALF_UP, Decimal

from spvhub_einvoice import default_validator

NS = ('xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" '
      'xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2" '
      'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"')


def party(role: str, vat: str, name: str, county: str, city: str) -> str:
    return (f"<cac:{role}><cac:Party><cac:PostalAddress><cbc:StreetName>Str. Exemplu 1</cbc:StreetName>"
            f"<cbc:CityName>{city}</cbc:CityName><cbc:CountrySubentity>{county}</cbc:CountrySubentity><cac:Country>"
            "<cbc:IdentificationCode>RO</cbc:IdentificationCode></cac:Country></cac:PostalAddress><cac:PartyTaxScheme>"
            f"<cbc:CompanyID>{vat}</cbc:CompanyID><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>"
            f"<cac:PartyLegalEntity><cbc:RegistrationName>{name}</cbc:RegistrationName></cac:PartyLegalEntity>"
            f"</cac:Party></cac:{role}>")


def invoice(lines: int) -> bytes:
    rows, groups = [], {Decimal(21): Decimal(0), Decimal(11): Decimal(0)}
    for i in range(1, lines + 1):
        pct = Decimal(21) if i % 4 else Decimal(11)
        qty, price = Decimal(i % 7 + 1), Decimal(f"{10 + i}.25")
        net = (qty * price).quantize(Decimal("0.01"))
        groups[pct] += net
        rows.append(f'<cac:InvoiceLine><cbc:ID>{i}</cbc:ID><cbc:InvoicedQuantity unitCode="H87">{qty}'
                    f'</cbc:InvoicedQuantity><cbc:LineExtensionAmount currencyID="RON">{net}</cbc:LineExtensionAmount>'
                    f"<cac:Item><cbc:Name>Articol {i}</cbc:Name><cac:ClassifiedTaxCategory><cbc:ID>S</cbc:ID>"
                    f"<cbc:Percent>{pct}</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme>"
                    f'</cac:ClassifiedTaxCategory></cac:Item><cac:Price><cbc:PriceAmount currencyID="RON">{price}'
                    "</cbc:PriceAmount></cac:Price></cac:InvoiceLine>")
    vat = {p: (t * p / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) for p, t in groups.items()}
    net, tax = sum(groups.values()), sum(vat.values())
    subs = "".join(f'<cac:TaxSubtotal><cbc:TaxableAmount currencyID="RON">{groups[p]}</cbc:TaxableAmount>'
                   f'<cbc:TaxAmount currencyID="RON">{vat[p]}</cbc:TaxAmount><cac:TaxCategory><cbc:ID>S</cbc:ID>'
                   f"<cbc:Percent>{p}</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory>"
                   "</cac:TaxSubtotal>" for p in groups)
    return (f'<?xml version="1.0" encoding="UTF-8"?><Invoice {NS}><cbc:CustomizationID>'
            "urn:cen.eu:en16931:2017#compliant#urn:efactura.mfinante.ro:CIUS-RO:1.0.1</cbc:CustomizationID>"
            "<cbc:ID>BENCH-0001</cbc:ID><cbc:IssueDate>2026-03-06</cbc:IssueDate><cbc:DueDate>2026-04-05</cbc:DueDate>"
            "<cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode><cbc:DocumentCurrencyCode>RON</cbc:DocumentCurrencyCode>"
            + party("AccountingSupplierParty", "RO8486152", "ALFA SRL", "RO-CJ", "Cluj-Napoca")
            + party("AccountingCustomerParty", "RO14399840", "BETA SRL", "RO-B", "SECTOR3")
            + f'<cac:TaxTotal><cbc:TaxAmount currencyID="RON">{tax}</cbc:TaxAmount>{subs}</cac:TaxTotal>'
            f'<cac:LegalMonetaryTotal><cbc:LineExtensionAmount currencyID="RON">{net}</cbc:LineExtensionAmount>'
            f'<cbc:TaxExclusiveAmount currencyID="RON">{net}</cbc:TaxExclusiveAmount>'
            f'<cbc:TaxInclusiveAmount currencyID="RON">{net + tax}</cbc:TaxInclusiveAmount>'
            f'<cbc:PayableAmount currencyID="RON">{net + tax}</cbc:PayableAmount></cac:LegalMonetaryTotal>'
            + "".join(rows) + "</Invoice>").encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=100)
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    xml = invoice(args.lines)
    v = default_validator()
    t0 = time.perf_counter()
    v.warm()
    warm = time.perf_counter() - t0
    report = v.validate(xml)
    assert report.ok, [f.message for f in report.findings]
    for _ in range(10):
        v.validate(xml)
    times = []
    start = time.perf_counter()
    for _ in range(args.runs):
        t = time.perf_counter()
        v.validate(xml)
        times.append((time.perf_counter() - t) * 1000)
    elapsed = time.perf_counter() - start
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"offline validation, {args.lines}-line invoice ({len(xml) / 1024:.0f} KiB), {args.runs} runs, one core")
    print(f"  load + compile once: {warm * 1000:.0f} ms")
    print(f"  median {statistics.median(times):.1f} ms   p99 {p99:.1f} ms   max {times[-1]:.1f} ms")
    print(f"  {args.runs / elapsed:.1f} documents/s")


if __name__ == "__main__":
    main()
