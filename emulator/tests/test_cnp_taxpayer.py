"""A natural person filing under their CNP (since June 2026): the demo's CNP taxpayer lists, downloads and uploads
like a company, through a certificate with rights on their own CNP; rights are checked on a CNP as on a CIF."""

from __future__ import annotations

import io
import zipfile
from datetime import date
from decimal import Decimal

import httpx
import pytest

from anaf_emulator import create_app
from anaf_emulator.cif import is_valid_cnp
from anaf_emulator.ubl import InvoiceSpec, Line, Party, render

EF = "/prod/FCTEL/rest"
CNP = "1850315124561"
WRONG_CONTROL = CNP[:12] + str((int(CNP[12]) + 1) % 10)


@pytest.fixture
async def demo():
    app = create_app("demo.json")
    state = app.state.emulator
    state.clock.freeze(True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emulator") as client:
        yield client, state


async def bearer(client: httpx.AsyncClient, cert: str) -> dict[str, str]:
    r = await client.post("/__admin/tokens", json={"certificate": cert})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def window_ms(state, days: int = 59) -> dict[str, int]:
    now = int(state.clock.timestamp() * 1000)
    return {"startTime": now - days * 86_400_000, "endTime": now - 1000}


def test_the_demo_has_a_cnp_taxpayer_whose_certificate_has_rights_on_their_cnp():
    state = create_app("demo.json").state.emulator
    cert = state.certs["persoana-fizica"]
    assert is_valid_cnp(CNP) and cert.cnp == CNP
    assert CNP in cert.rights and len(cert.rights) > 1  # their own CNP among the ids they may act for
    person = state.companies[CNP]
    assert person.vat is False and person.name == cert.name
    tips = [m.tip for m in state.by_cif[CNP]]
    assert tips.count("FACTURA TRIMISA") >= 2 and tips.count("FACTURA PRIMITA") >= 2 and "ERORI FACTURA" in tips
    # nobody else's certificate covers the person
    assert all(CNP not in c.rights for c in state.certs.values() if c.id != "persoana-fizica")


async def test_the_cnp_taxpayer_lists_both_ways_and_downloads(demo):
    client, state = demo
    h = await bearer(client, "persoana-fizica")
    r = await client.get(f"{EF}/listaMesajeFactura", params={"zile": 60, "cif": CNP}, headers=h)
    body = r.json()
    assert r.status_code == 200 and "eroare" not in body, body
    assert len(body["mesaje"]) == len(state.by_cif[CNP]) == 6
    assert {m["cif"] for m in body["mesaje"]} == {CNP}
    assert CNP in body["cui"].split(",")
    sent = [m for m in body["mesaje"] if m["tip"] == "FACTURA TRIMISA"]
    assert all(f"cif_emitent={CNP}" in m["detalii"] for m in sent)

    r = await client.get(f"{EF}/listaMesajePaginatieFactura", params={**window_ms(state), "cif": CNP, "pagina": 1},
                         headers=h)
    paged = r.json()
    assert paged["numar_total_inregistrari"] == 6 and {m["cif"] for m in paged["mesaje"]} == {CNP}
    assert {m["id"] for m in paged["mesaje"]} == {m["id"] for m in body["mesaje"]}

    received = next(m for m in body["mesaje"] if m["tip"] == "FACTURA PRIMITA")
    r = await client.get(f"{EF}/descarcare", params={"id": sent[0]["id"]}, headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        xml = zf.read(f"{sent[0]['id_solicitare']}.xml")
    assert f"<cbc:CompanyID>{CNP}</cbc:CompanyID>".encode() in xml  # the person is the seller, by CNP
    r = await client.get(f"{EF}/descarcare", params={"id": received["id"]}, headers=h)
    assert r.status_code == 200 and r.content[:2] == b"PK"


async def test_rights_on_a_cnp_are_checked_like_rights_on_a_cif(demo):
    client, state = demo
    firm = await bearer(client, "contabil")
    person = await bearer(client, "persoana-fizica")
    before = len(state.uploads)
    # another certificate has no rights on the person's CNP: ANAF's rights text, for both lists and the download
    r = await client.get(f"{EF}/listaMesajeFactura", params={"zile": 60, "cif": CNP}, headers=firm)
    assert r.json() == {"eroare": f"Nu aveti drept in SPV pentru CIF={CNP}", "titlu": "Lista Mesaje"}
    r = await client.get(f"{EF}/listaMesajePaginatieFactura",
                         params={**window_ms(state), "cif": CNP, "pagina": 1}, headers=firm)
    assert r.json()["eroare"] == f"Nu aveti drept in SPV pentru CIF={CNP}"
    mid = state.by_cif[CNP][0].id
    r = await client.get(f"{EF}/descarcare", params={"id": mid}, headers=firm)
    assert r.json() == {"eroare": "Nu aveti dreptul sa descarcati acesta factura", "titlu": "Descarcare mesaj"}
    # 13 digits with a wrong control digit is no CNP anybody has rights on; 13 characters with a letter is no number
    r = await client.get(f"{EF}/listaMesajeFactura", params={"zile": 60, "cif": WRONG_CONTROL}, headers=person)
    assert r.json()["eroare"] == f"Nu aveti drept in SPV pentru CIF={WRONG_CONTROL}"
    letters = CNP[:12] + "X"
    r = await client.get(f"{EF}/listaMesajeFactura", params={"zile": 60, "cif": letters}, headers=person)
    assert r.json()["eroare"] == f"CIF introdus= {letters} nu este un numar"
    r = await client.post(f"{EF}/upload", params={"standard": "UBL", "cif": WRONG_CONTROL}, content=_invoice(),
                          headers={**person, "Content-Type": "text/plain"})
    assert f'errorMessage="Nu aveti drept in SPV pentru CIF={WRONG_CONTROL}"' in r.text
    r = await client.post(f"{EF}/upload", params={"standard": "UBL", "cif": CNP}, content=_invoice(),
                          headers={**firm, "Content-Type": "text/plain"})
    assert f'errorMessage="Nu aveti drept in SPV pentru CIF={CNP}"' in r.text
    assert len(state.uploads) == before  # refusals store nothing


def _invoice() -> bytes:
    spec = InvoiceSpec("SRM-0100", date(2026, 6, 15), Party(CNP, "STOICA RADU MIHAI", vat=False),
                       Party("44166200", "BETA SRL", county="B"),
                       [Line("Consultanta", Decimal(2), "H87", Decimal("100.00"), "S", Decimal(21))])
    return render(spec)


async def test_the_cnp_taxpayer_uploads_under_their_cnp(demo):
    client, state = demo
    h = await bearer(client, "persoana-fizica")
    r = await client.post(f"{EF}/upload", params={"standard": "UBL", "cif": CNP}, content=_invoice(),
                          headers={**h, "Content-Type": "text/plain"})
    assert 'ExecutionStatus="0"' in r.text and "index_incarcare=" in r.text, r.text
    index = int(r.text.split('index_incarcare="')[1].split('"')[0])
    up = state.uploads[index]
    assert up.cif == CNP and up.seller == CNP
    assert up.outcome == "ok", up.errors  # the CNP is the seller's legal registration id (BT-30)
    state.clock.advance(3600)
    r = await client.get(f"{EF}/stareMesaj", params={"id_incarcare": index}, headers=h)
    assert 'stare="' in r.text
    listed = (await client.get(f"{EF}/listaMesajeFactura", params={"zile": 1, "cif": CNP}, headers=h)).json()
    assert any(m["id_solicitare"] == str(index) and m["cif"] == CNP for m in listed["mesaje"]), listed


async def test_the_cnp_taxpayer_authorizes_through_oauth_like_any_certificate(demo):
    import re
    from urllib.parse import parse_qs, urlparse

    client, state = demo
    app = state.scenario.applications[0]
    redirect = "https://localhost:9002/callback"
    q = {"response_type": "code", "client_id": app.client_id, "redirect_uri": redirect, "token_content_type": "jwt",
         "state": "s1"}
    page = await client.get("/anaf-oauth2/v1/authorize", params=q)
    assert page.status_code == 200 and 'value="persoana-fizica"' in page.text
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    r = await client.post("/anaf-oauth2/v1/authorize",
                          data={**hidden, "action": "login", "certificate": "persoana-fizica", "pin": "1234"})
    assert r.status_code == 302, r.text
    code = parse_qs(urlparse(r.headers["location"]).query)["code"][0]
    r = await client.post("/anaf-oauth2/v1/token", auth=(app.client_id, app.client_secret),
                          data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
                                "token_content_type": "jwt"})
    assert r.status_code == 200, r.text
    h = {"Authorization": f"Bearer {r.json()['access_token']}"}
    listed = (await client.get(f"{EF}/listaMesajeFactura", params={"zile": 60, "cif": CNP}, headers=h)).json()
    assert {m["cif"] for m in listed["mesaje"]} == {CNP}
