"""Public registries, admin API, faults, counters, the SPV mailbox and the CIF helper."""

from __future__ import annotations

import random

import pytest
from conftest import A, B, C, D

from anaf_emulator.cif import control_digit, is_valid_cif, make_cif, random_cif


def test_cif_control_digit():
    assert is_valid_cif("1590082") and is_valid_cif("RO14399840") and is_valid_cif("8000000000")
    assert not is_valid_cif("1590083") and not is_valid_cif("1")
    assert make_cif("159008") == "1590082" and control_digit("800000000") == 0
    rng = random.Random(3)
    assert all(is_valid_cif(random_cif(rng)) for _ in range(200))


async def test_v9_found_notfound_and_cap(emu):
    emu.state.switches.update({"public_rate_limit": "ignore"})
    r = await emu.client.post("/api/PlatitorTvaRest/v9/tva", json=[{"cui": int(A), "data": "2026-03-01"},
                                                                   {"cui": 99999999, "data": "2026-03-01"}])
    body = r.json()
    assert r.status_code == 200 and list(body) == ["found", "notFound"] and body["notFound"] == [99999999]
    rec = body["found"][0]
    assert set(rec) == {"date_generale", "inregistrare_scop_Tva", "inregistrare_RTVAI", "stare_inactiv",
                        "inregistrare_SplitTVA", "adresa_sediu_social", "adresa_domiciliu_fiscal"}
    assert rec["date_generale"]["cui"] == int(A) and rec["date_generale"]["data"] == "2026-03-01"
    assert rec["date_generale"]["nrRegCom"] == "J12/1/2015" and rec["inregistrare_scop_Tva"]["scpTVA"] is True
    assert isinstance(rec["inregistrare_scop_Tva"]["perioade_TVA"], list)
    assert rec["stare_inactiv"]["dataInactivare"] == "" and rec["stare_inactiv"]["statusInactivi"] is False
    assert rec["adresa_sediu_social"]["scod_JudetAuto"] == "CJ"
    r = await emu.client.post("/api/PlatitorTvaRest/v9/tva", json=[{"cui": i, "data": "2026-03-01"} for i in range(101)])
    assert r.status_code == 400
    emu.state.switches.update({"public_cod_wrapper": True})
    r = await emu.client.post("/PlatitorTvaRest/api/v9/tva", json=[{"cui": int(B), "data": "2026-03-01"}])
    assert r.json()["cod"] == 200 and r.json()["message"] == "SUCCESS"


async def test_public_one_request_per_second(emu):
    payload = [{"cui": int(A), "data": "2026-03-01"}]
    assert (await emu.client.post("/api/PlatitorTvaRest/v9/tva", json=payload)).status_code == 200
    assert (await emu.client.post("/api/PlatitorTvaRest/v9/tva", json=payload)).status_code == 429
    emu.advance(1)
    assert (await emu.client.post("/api/PlatitorTvaRest/v9/tva", json=payload)).status_code == 200


async def test_efactura_register_404_quirk(emu):
    emu.state.switches.update({"public_rate_limit": "ignore"})
    url = "/api/registruroefactura/v1/interogare"
    r = await emu.client.post(url, json=[{"cui": int(B), "data": "2026-03-01"}])
    assert r.status_code == 404 and r.json() == {"found": [], "notFound": [int(B)]}
    r = await emu.client.post(url, json=[{"cui": int(A), "data": "2026-03-01"}, {"cui": int(B), "data": "2026-03-01"}])
    assert r.status_code == 200 and r.json()["found"][0]["cui"] == int(A) and r.json()["notFound"] == [int(B)]
    r = await emu.client.post(url, json=[{"cui": i} for i in range(101)])
    assert r.status_code == 400


async def test_admin_clock(emu):
    r = await emu.client.get("/__admin/clock")
    assert r.json()["frozen"] is True and r.json()["now"].startswith("2026-03-10T10:00:00")
    r = await emu.client.post("/__admin/clock", json={"advance_days": 2, "advance_seconds": 30})
    assert r.json()["now"].startswith("2026-03-12T10:00:30")
    r = await emu.client.post("/__admin/clock", json={"now": "2026-07-01T00:00:00"})
    assert r.json()["now"] == "2026-07-01T00:00:00+03:00"


async def test_admin_switches(emu):
    r = await emu.client.post("/__admin/switches", json={"list_cui_field": "echo", "download_cap_per_message": 3})
    assert r.json()["list_cui_field"] == "echo" and r.json()["download_cap_per_message"] == 3
    assert (await emu.client.post("/__admin/switches", json={"nope": 1})).status_code == 400
    assert (await emu.client.post("/__admin/switches", json={"invalid_token_status": 500})).status_code == 400


@pytest.mark.parametrize("family", ["efactura", "*"])
async def test_faults_waf_5xx_burst_latency(emu, family):
    h = await emu.bearer()
    url = "/prod/FCTEL/rest/listaMesajeFactura"
    await emu.client.post("/__admin/faults", json={"family": family, "waf_rate": 1.0})
    r = await emu.client.get(url, params={"zile": 1, "cif": A}, headers=h)
    assert r.status_code == 200 and "The requested URL was rejected" in r.text and "Your support ID is:" in r.text
    await emu.client.post("/__admin/faults", json={"family": family, "waf_rate": 0, "error_rate": 1.0,
                                                   "error_status": 502})
    assert (await emu.client.get(url, params={"zile": 1, "cif": A}, headers=h)).status_code == 502
    await emu.client.post("/__admin/faults", json={"family": family, "error_rate": 0, "burst_429": 2,
                                                   "latency_ms": [1, 2]})
    statuses = [(await emu.client.get(url, params={"zile": 1, "cif": A}, headers=h)).status_code for _ in range(3)]
    assert statuses == [429, 429, 200]
    await emu.client.post("/__admin/faults", json={"family": family, "my_policy_rate": 1.0})
    r = await emu.client.get(url, params={"zile": 1, "cif": A}, headers=h)
    assert r.status_code == 302 and r.headers["location"] == "/my.policy"
    await emu.client.delete("/__admin/faults")
    assert (await emu.client.get(url, params={"zile": 1, "cif": A}, headers=h)).status_code == 200
    # faults on another family leave e-Factura alone
    await emu.client.post("/__admin/faults", json={"family": "etransport", "error_rate": 1.0})
    assert (await emu.client.get(url, params={"zile": 1, "cif": A}, headers=h)).status_code == 200


async def test_timeout_fault(emu):
    await emu.client.post("/__admin/faults", json={"family": "public", "timeout_rate": 1.0, "timeout_seconds": 0.05})
    r = await emu.client.post("/api/PlatitorTvaRest/v9/tva", json=[])
    assert r.status_code == 504


async def test_counters_and_reset(emu):
    h = await emu.bearer()
    for _ in range(3):
        await emu.client.get("/prod/FCTEL/rest/listaMesajeFactura", params={"zile": 5, "cif": A}, headers=h)
    c = (await emu.client.get("/__admin/counters")).json()
    assert c["endpoints"]["GET /FCTEL/rest/listaMesajeFactura"] == 3
    assert c["cui"][A]["listaMesajeFactura"] == 3
    assert c["oauth"]["admin_tokens"] == 1
    await emu.client.delete("/__admin/counters")
    assert (await emu.client.get("/__admin/counters")).json()["endpoints"] == {}
    await emu.client.post("/__admin/invoices", json={"seller": A, "buyer": B})
    before = len(emu.state.messages)
    r = await emu.client.post("/__admin/reset")
    assert r.status_code == 200 and len(emu.app.state.emulator.messages) == before - 2


async def test_admin_data_endpoints(emu):
    r = await emu.client.post("/__admin/invoices", json={"seller": A, "buyer": B, "kind": "credit_note",
                                                         "currency": "EUR", "lines": 3})
    body = r.json()
    assert [m["tip"] for m in body["messages"]] == ["FACTURA TRIMISA", "FACTURA PRIMITA"]
    up = (await emu.client.get(f"/__admin/uploads/{body['index_incarcare']}")).json()
    assert up["standard"] == "CN" and up["stare"] == "ok"
    msgs = (await emu.client.get("/__admin/messages", params={"cif": B})).json()
    assert body["messages"][1]["id"] in [m["id"] for m in msgs]
    r = await emu.client.post("/__admin/invoices/generate", json={"cuis": [B], "per_company_per_day": 2, "days": 3})
    assert r.json()["uploads"] >= 4
    r = await emu.client.post("/__admin/transports", json={"declarant": A, "carrier": C})
    t = r.json()
    assert len(t["uit"]) == 16
    carriers = (await emu.client.get("/__admin/transports", params={"carrier": C})).json()
    assert t["uit"] in [x["uit"] for x in carriers]
    r = await emu.client.post("/__admin/certificates/acc/rights", json={"grant": [C], "remove": [D]})
    assert r.json()["rights"] == [A, B, C]
    scen = (await emu.client.get("/__admin/scenario")).json()
    assert {c["id"] for c in scen["certificates"]} == {"acc", "carrier", "nobody"}
    assert all(len(a["client_id"]) == 48 and len(a["client_secret"]) == 64 for a in scen["applications"])


async def test_generate_presign_builds_every_zip_before_any_download(emu):
    state = emu.app.state.emulator
    r = await emu.client.post("/__admin/invoices/generate", json={"cuis": [B], "per_company_per_day": 1, "days": 2,
                                                                  "presign": True})
    assert r.json()["uploads"] >= 2
    generated = [u for u in state.uploads.values() if u.message_ids and B in (u.seller, u.buyer)]
    assert generated and all((u.index, "production") in state.zip_cache for u in generated)
    cached = dict(state.zip_cache)
    # downloads serve the pre-built ZIP
    assert all(state.zip_for(u) is cached[(u.index, "production")] for u in generated)


async def test_admin_disabled():
    import httpx

    from anaf_emulator import create_app

    app = create_app("minimal.json", admin=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as client:
        assert (await client.get("/__admin/clock")).status_code == 404
        assert (await client.get("/__emulator/jwks.json")).status_code == 200


async def test_spv_mailbox_session(emu):
    r = await emu.client.get("/SPVWS2/rest/listaMesaje", params={"zile": 30})
    assert r.status_code == 302 and r.headers["location"] == "/my.policy"
    r = await emu.client.get("/my.policy")
    assert r.status_code == 200 and "Certificatul nu a fost prezentat" in r.text
    r = await emu.client.get("/my.policy", headers={"X-Emulator-Certificate": "acc"})
    assert r.status_code == 302
    r = await emu.client.get("/SPVWS2/rest/listaMesaje", params={"zile": 30})
    body = r.json()
    assert body["cui"] == f"{A},{B},{D}" and body["cnp"] == "1800101123456" and body["mesaje"][0]["tip"] == "RECIPISA"
    assert body["titlu"] == "Lista Mesaje disponibile din ultimele 30 zile"
    r = await emu.client.get("/SPVWS2/rest/listaMesaje", params={"zile": 1})
    assert r.json() == {"titlu": "Lista Mesaje", "eroare": "Nu exista mesaje in ultimele 1 zile"}
    pdf = await emu.client.get("/SPVWS2/rest/descarcare", params={"id": body["mesaje"][0]["id"]})
    assert pdf.content[:4] == b"%PDF"
    r = await emu.client.get("/SPVWS2/rest/cerere", params={"tip": "VECTOR FISCAL", "cui": A})
    assert r.json()["id_solicitare"]


async def test_injected_faults_are_counted_per_kind_and_family(emu):
    h = await emu.bearer()
    url = "/prod/FCTEL/rest/listaMesajeFactura"
    await emu.client.post("/__admin/faults", json={"family": "*", "latency_ms": [1, 3], "error_rate": 0.3,
                                                   "error_status": 503, "timeout_rate": 0.1, "timeout_seconds": 0.01})
    statuses = [(await emu.client.get(url, params={"zile": 1, "cif": A}, headers=h)).status_code for _ in range(60)]
    statuses += [(await emu.client.post("/api/PlatitorTvaRest/v9/tva", json=[])).status_code for _ in range(20)]
    body = (await emu.client.get("/__admin/faults")).json()
    assert body["switches"]["*"]["error_rate"] == 0.3 and body["switches"]["*"]["latency_ms"] == [1, 3]
    fam, total = body["injected"]["by_family"], body["injected"]["total"]
    # exactly what the clients saw, per family, not an estimate from the rates
    assert fam["efactura"]["5xx"] == statuses[:60].count(503) and fam["efactura"]["timeout"] == statuses[:60].count(504)
    assert fam["public"]["5xx"] == statuses[60:].count(503) and fam["public"]["timeout"] == statuses[60:].count(504)
    assert total["5xx"] == statuses.count(503) > 0 and total["timeout"] == statuses.count(504) > 0
    assert fam["efactura"]["latency"] == 60 and fam["public"]["latency"] == 20 and total["latency"] == 80
    assert 80 <= total["latency_ms"] <= 240 and total["waf"] == total["my_policy"] == total["429"] == 0
    assert "*" not in fam and "oauth" not in fam  # counted where the call went, never under the wildcard

    # switching faults off keeps the counts readable; `?reset=true` reads and zeroes them
    await emu.client.delete("/__admin/faults")
    body = (await emu.client.get("/__admin/faults", params={"reset": "true"})).json()
    assert body["switches"] == {} and body["injected"]["total"]["latency"] == 80
    assert (await emu.client.get("/__admin/faults")).json()["injected"] == {
        "by_family": {}, "total": {k: 0 for k in ("5xx", "timeout", "latency", "waf", "my_policy", "429", "latency_ms")}}

    # setting switches starts the counts afresh; a refused setting changes nothing
    await emu.client.post("/__admin/faults", json={"family": "efactura", "burst_429": 1})
    assert (await emu.client.get(url, params={"zile": 1, "cif": A}, headers=h)).status_code == 429
    assert (await emu.client.get("/__admin/faults")).json()["injected"]["by_family"]["efactura"]["429"] == 1
    await emu.client.post("/__admin/faults", json={"family": "efactura", "error_rate": 1.0})
    r = await emu.client.post("/__admin/faults", json={"family": "nope", "error_rate": 1.0})
    assert r.status_code == 400
    assert (await emu.client.get(url, params={"zile": 1, "cif": A}, headers=h)).status_code == 503
    assert (await emu.client.get("/__admin/faults")).json()["injected"]["by_family"] == {
        "efactura": {"5xx": 1, "timeout": 0, "latency": 0, "waf": 0, "my_policy": 0, "429": 0, "latency_ms": 0}}
