"""Registering companies by CIF against the emulator's public registry, the accounting-services flag, members."""
from __future__ import annotations

from pfkit import FIRM_A, FIRM_B, Env


async def test_register_with_ro_fills_every_field_from_registry(env: Env) -> None:
    r = await env.api.post("/api/portfolio/companies", json={"cif": f"ro {FIRM_A[:3]} {FIRM_A[3:]}"},
                           headers=env.headers("u1"))
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["cif"] == FIRM_A and c["role"] == "owner" and c["relation"] == "own"
    assert c["name"] == "FIRMA 00 SRL"
    assert c["address"] and "STR. EXEMPLU 0" in c["address"].upper()
    assert c["trade_register_no"] == "J12/1000/2015"
    assert c["vat_payer"] is True and c["efactura_registered"] is True
    assert c["provides_accounting_services"] is False
    # idempotent for the same user
    again = await env.api.post("/api/portfolio/companies", json={"cif": FIRM_A}, headers=env.headers("u1"))
    assert again.status_code == 200 and again.json()["cif"] == FIRM_A
    evs = await env.events()
    topics = [t for t, _ in evs]
    assert topics.count("portfolio.company-registered") == 1
    reg = next(d for t, d in evs if t == "portfolio.company-registered")
    assert reg["name"] == "FIRMA 00 SRL" and reg["trade_register_no"] == "J12/1000/2015"
    assert reg["registered_by"] == "u1"
    acc = [d for t, d in evs if t == "portfolio.access-changed"]
    assert acc == [{"cif": FIRM_A, "user_id": "u1", "role": "owner", "granted": True, "via_firm_cif": None}]


async def test_invalid_cifs_get_clear_4xx_and_nothing_written(env: Env) -> None:
    cases = {"RO 1400018": "cif_bad_control_digit", "RO12A45": "cif_not_numeric", "": "cif_empty",
             "12345678901": "cif_bad_length"}
    for raw, code in cases.items():
        r = await env.api.post("/api/portfolio/companies", json={"cif": raw}, headers=env.headers("u1"))
        assert r.status_code == 422, (raw, r.text)
        assert r.json()["error"]["code"] == code
        assert r.json()["error"]["message"]
    # valid control digit but unknown to ANAF
    r = await env.api.post("/api/portfolio/companies", json={"cif": "RO 14399840"}, headers=env.headers("u1"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "cif_not_in_registry"
    r = await env.api.post("/api/portfolio/companies", json={}, headers=env.headers("u1"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    assert (await env.api.get("/api/portfolio/companies", headers=env.headers("u1"))).json()["count"] == 0
    assert await env.events() == []


async def test_someone_elses_company_is_a_conflict(env: Env) -> None:
    await env.register("u1", FIRM_A)
    r = await env.api.post("/api/portfolio/companies", json={"cif": FIRM_A}, headers=env.headers("intruder"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "company_already_registered"


async def test_unauthenticated_is_401(env: Env) -> None:
    r = await env.api.get("/api/portfolio/companies")
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_token"


async def test_accounting_flag_owner_admin_only(env: Env) -> None:
    await env.register("owner", FIRM_A)
    r = await env.api.put(f"/api/portfolio/companies/{FIRM_A}/members/m1", json={"role": "member"},
                          headers=env.headers("owner"))
    assert r.status_code == 200
    r = await env.api.patch(f"/api/portfolio/companies/{FIRM_A}", json={"provides_accounting_services": True},
                            headers=env.headers("m1"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_role"
    r = await env.api.patch(f"/api/portfolio/companies/{FIRM_A}", json={"provides_accounting_services": True},
                            headers=env.headers("owner"))
    assert r.status_code == 200 and r.json()["provides_accounting_services"] is True
    upd = [d for t, d in await env.events("portfolio.company-updated")]
    assert len(upd) == 1 and upd[0]["provides_accounting_services"] is True and upd[0]["cif"] == FIRM_A


async def test_members_roles_and_access_events(env: Env) -> None:
    await env.register("owner", FIRM_A)
    H = env.headers
    assert (await env.api.put(f"/api/portfolio/companies/{FIRM_A}/members/adm", json={"role": "admin"},
                              headers=H("owner"))).status_code == 200
    # an admin cannot create owners
    r = await env.api.put(f"/api/portfolio/companies/{FIRM_A}/members/x", json={"role": "owner"}, headers=H("adm"))
    assert r.status_code == 403
    assert (await env.api.put(f"/api/portfolio/companies/{FIRM_A}/members/m", json={"role": "member"},
                              headers=H("adm"))).status_code == 200
    # the last owner cannot leave
    r = await env.api.delete(f"/api/portfolio/companies/{FIRM_A}/members/owner", headers=H("owner"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "last_owner"
    r = await env.api.get(f"/api/portfolio/companies/{FIRM_A}/members", headers=H("m"))
    assert {m["user_id"]: m["role"] for m in r.json()["members"]} == {"owner": "owner", "adm": "admin", "m": "member"}
    assert (await env.api.delete(f"/api/portfolio/companies/{FIRM_A}/members/m", headers=H("adm"))).status_code == 204
    acc = [(d["user_id"], d["role"], d["granted"]) for _, d in await env.events("portfolio.access-changed")]
    assert acc == [("owner", "owner", True), ("adm", "admin", True), ("m", "member", True), ("m", "member", False)]
    r = await env.api.get(f"/api/portfolio/companies/{FIRM_A}", headers=H("m"))
    assert r.status_code == 403


async def test_registry_refresh_publishes_changes(env: Env) -> None:
    await env.register("u1", FIRM_B)
    state = env.emulator_app.state.emulator
    await env.admin("/__admin/clock", {"advance_days": 2})
    state.companies[FIRM_B].name = "FIRMA RENUMITA SRL"  # white-box: the registry's answer changes
    async with env.runtime.uow() as uow:
        from spvhub_portfolio import handlers as h
        n = await h.refresh_registry(uow, env.deps)
        await uow.commit()
    assert n == 1
    upd = [d for _, d in await env.events("portfolio.company-updated")]
    assert len(upd) == 1 and upd[0]["name"] == "FIRMA RENUMITA SRL"
    r = await env.api.get(f"/api/portfolio/companies/{FIRM_B}", headers=env.headers("u1"))
    assert r.json()["name"] == "FIRMA RENUMITA SRL"
