"""Drives the third-party anafpy 0.13.3 client against a running emulator (run by a Python >= 3.12 venv).

Usage: python anafpy_client.py <base_url> <client_id> <client_secret> <redirect_uri> <certificate> <pin> <cif>
Prints one JSON summary line. anafpy is configured only with base URLs and credentials.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from urllib.parse import parse_qs, urlparse

import httpx2
from anafpy.auth import oauth
from anafpy.auth.provider import AnafAuth, TokenProvider
from anafpy.auth.store import MemoryTokenStore
from anafpy.efactura import client as efactura_client
from anafpy.efactura.client import EFacturaClient
from anafpy.efactura.models import MessageState

INVOICE = """<?xml version="1.0" encoding="UTF-8"?>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
 xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
 xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
<cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:efactura.mfinante.ro:CIUS-RO:1.0.1</cbc:CustomizationID>
<cbc:ID>ANAFPY-1</cbc:ID><cbc:IssueDate>2026-03-01</cbc:IssueDate><cbc:DueDate>2026-03-31</cbc:DueDate><cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>
<cbc:DocumentCurrencyCode>RON</cbc:DocumentCurrencyCode>
<cac:AccountingSupplierParty><cac:Party><cac:PostalAddress><cbc:StreetName>Str. A 1</cbc:StreetName>
<cbc:CityName>Cluj-Napoca</cbc:CityName><cbc:CountrySubentity>RO-CJ</cbc:CountrySubentity>
<cac:Country><cbc:IdentificationCode>RO</cbc:IdentificationCode></cac:Country></cac:PostalAddress>
<cac:PartyTaxScheme><cbc:CompanyID>RO{seller}</cbc:CompanyID><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>
<cac:PartyLegalEntity><cbc:RegistrationName>SELLER SRL</cbc:RegistrationName></cac:PartyLegalEntity></cac:Party></cac:AccountingSupplierParty>
<cac:AccountingCustomerParty><cac:Party><cac:PostalAddress><cbc:StreetName>Str. B 2</cbc:StreetName>
<cbc:CityName>SECTOR1</cbc:CityName><cbc:CountrySubentity>RO-B</cbc:CountrySubentity>
<cac:Country><cbc:IdentificationCode>RO</cbc:IdentificationCode></cac:Country></cac:PostalAddress>
<cac:PartyTaxScheme><cbc:CompanyID>RO8000000000</cbc:CompanyID><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>
<cac:PartyLegalEntity><cbc:RegistrationName>BUYER SRL</cbc:RegistrationName></cac:PartyLegalEntity></cac:Party></cac:AccountingCustomerParty>
<cac:TaxTotal><cbc:TaxAmount currencyID="RON">21.00</cbc:TaxAmount><cac:TaxSubtotal>
<cbc:TaxableAmount currencyID="RON">100.00</cbc:TaxableAmount><cbc:TaxAmount currencyID="RON">21.00</cbc:TaxAmount>
<cac:TaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>21</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory>
</cac:TaxSubtotal></cac:TaxTotal>
<cac:LegalMonetaryTotal><cbc:LineExtensionAmount currencyID="RON">100.00</cbc:LineExtensionAmount>
<cbc:TaxExclusiveAmount currencyID="RON">100.00</cbc:TaxExclusiveAmount><cbc:TaxInclusiveAmount currencyID="RON">121.00</cbc:TaxInclusiveAmount>
<cbc:PayableAmount currencyID="RON">121.00</cbc:PayableAmount></cac:LegalMonetaryTotal>
<cac:InvoiceLine><cbc:ID>1</cbc:ID><cbc:InvoicedQuantity unitCode="H87">1</cbc:InvoicedQuantity>
<cbc:LineExtensionAmount currencyID="RON">100.00</cbc:LineExtensionAmount><cac:Item><cbc:Name>Servicii</cbc:Name>
<cac:ClassifiedTaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>21</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory></cac:Item>
<cac:Price><cbc:PriceAmount currencyID="RON">100.00</cbc:PriceAmount></cac:Price></cac:InvoiceLine>
</Invoice>
"""


async def browser_login(base: str, authorize_url: str, certificate: str, pin: str) -> str:
    """What the person does in the browser: open ANAF's page, pick the certificate, enter the PIN."""
    async with httpx2.AsyncClient(base_url=base, follow_redirects=False) as browser:
        page = await browser.get(authorize_url)
        page.raise_for_status()
        hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
        form = {**hidden, "certificate": certificate, "pin": pin, "action": "login"}
        answer = await browser.post("/anaf-oauth2/v1/authorize", data=form)
        assert answer.status_code == 302, answer.text
        return parse_qs(urlparse(answer.headers["location"]).query)["code"][0]


async def main() -> None:
    base, client_id, client_secret, redirect_uri, certificate, pin, cif = sys.argv[1:8]
    # configuration: base URLs (logincert, api.anaf.ro) and credentials, nothing else
    oauth.AUTHORIZE_URL = f"{base}/anaf-oauth2/v1/authorize"
    oauth.TOKEN_URL = f"{base}/anaf-oauth2/v1/token"
    efactura_client.OAUTH_HOST = base

    authorize_url = oauth.build_authorize_url(client_id, redirect_uri, state="anafpy-state")
    code = await browser_login(base, authorize_url, certificate, pin)
    async with httpx2.AsyncClient(timeout=30) as http:
        tokens = await oauth.exchange_code(http, client_id=client_id, client_secret=client_secret, code=code,
                                           redirect_uri=redirect_uri)
        refreshed = await oauth.refresh_tokens(http, client_id=client_id, client_secret=client_secret,
                                               refresh_token=tokens.refresh_token)
    provider = TokenProvider(client_id=client_id, client_secret=client_secret, store=MemoryTokenStore(refreshed))
    http = httpx2.AsyncClient(base_url=f"{base}/test/FCTEL/rest", auth=AnafAuth(provider), timeout=30)
    summary: dict[str, object] = {"token_lifetime_days": round((tokens.access_expires_at - tokens.obtained_at) / 86400)}
    async with EFacturaClient(provider, http=http) as client:
        items = [m async for m in client.list_messages(cif=cif, days=60)]
        summary["listed"] = len(items)
        summary["types"] = sorted({m.message_type for m in items if m.message_type})
        first = next(m for m in items if m.message_type == "FACTURA TRIMISA")
        downloaded = await client.download(first.id)
        summary["downloaded_id"] = first.id
        summary["content_root"] = type(downloaded.document).__name__ if downloaded.document is not None else None
        summary["has_signature"] = downloaded.signature_xml is not None
        check = await client.validate_signature(downloaded.content_xml, downloaded.signature_xml)
        summary["signature_valid"] = check.valid
        result = await client.upload(INVOICE.replace("{seller}", cif), cif=cif)
        summary["upload_accepted"] = result.accepted
        summary["upload_id"] = result.upload_id
        status = await client.upload_and_wait(INVOICE.replace("{seller}", cif), cif=cif, initial_wait=0.2,
                                              max_wait=0.5, timeout=20)
        summary["final_state"] = status.state.value
        summary["final_ok"] = status.state is MessageState.OK
        summary["download_id_from_status"] = status.download_id
        # anafpy's list window ends 60 s before now, so fetch the fresh invoice by its download id
        mine = await client.download(status.download_id)
        summary["uploaded_downloaded"] = b"ANAFPY-1" in (mine.content_xml or b"")
    await http.aclose()
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
