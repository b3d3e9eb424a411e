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
    # registering proves nothing: the grant is unverified until the user proves control
    assert acc == [{"cif": FIRM_A, "user_id": "u1", "role": "owner", "granted": True, "via_firm_cif": None,
                    "verified": False, "can_file": False}]
    assert c["verification"] == "unverified" and c["verification_hint"]


async def test_registry_lookup_shows_public_data_and_registers_nothing(env: Env) -> None:
    r = await env.api.get(f"/api/portfolio/registry/RO{FIRM_A}", headers=env.headers("u1"))
    assert r.status_code == 200, r.text
    assert r.json() == {"cif": FIRM_A, "name": "FIRMA 00 SRL", "address": r.json()["address"],
                        "trade_register_no": "J12/1000/2015", "vat_payer": True, "efactura_registered": True}
    bad = await env.api.get("/api/portfolio/registry/12345678", headers=env.headers("u1"))
    assert bad.status_code == 422 and bad.json()["error"]["code"].startswith("cif_")
    assert (await env.api.get(f"/api/portfolio/registry/{FIRM_A}")).status_code == 401
    mine = await env.api.get("/api/portfolio/companies", headers=env.headers("u1"))
    assert mine.json()["companies"] == []
    assert [t for t, _ in await env.events()] == []


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


async def test_an_unverified_registration_does_not_lock_the_cif(env: Env) -> None:
    # the first registrant never proves control; a second person registers too, and verifies first
    await env.register("first", FIRM_A, verify=False)
    r = await env.api.post("/api/portfolio/companies", json={"cif": FIRM_A}, headers=env.headers("real"))
    assert r.status_code == 201 and r.json()["verification"] == "unverified" and r.json()["role"] == "owner"
    assert [d for _, d in await env.events("portfolio.join-requested")] == []
    await env.verify("real", FIRM_A)
    r = await env.api.get(f"/api/portfolio/companies/{FIRM_A}/members", headers=env.headers("real"))
    assert {m["user_id"]: (m["role"], m["status"]) for m in r.json()["items"]} == {
        "first": ("owner", "pending_approval"), "real": ("owner", "active")}
    # the unverified first registrant sees registry data only, and cannot manage anything
    r = await env.api.get(f"/api/portfolio/companies/{FIRM_A}", headers=env.headers("first"))
    assert r.status_code == 200 and r.json()["verification"] == "unverified"
    r = await env.api.patch(f"/api/portfolio/companies/{FIRM_A}", json={"provides_accounting_services": True},
                            headers=env.headers("first"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "company_not_verified"
    assert "verificat" in r.json()["error"]["message"]  # Romanian by default
    r = await env.api.get(f"/api/portfolio/companies/{FIRM_A}/discovered", headers={
        **env.headers("first"), "Accept-Language": "en"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "company_not_verified"
    assert "not verified" in r.json()["error"]["message"]
    # the owner drops the stale claim; a registration after that is a join request the owner hears about
    r = await env.api.delete(f"/api/portfolio/companies/{FIRM_A}/members/first", headers=env.headers("real"))
    assert r.status_code == 204
    r = await env.api.post("/api/portfolio/companies", json={"cif": FIRM_A}, headers=env.headers("late"))
    assert r.status_code == 201 and r.json()["role"] == "member" and r.json()["verification"] == "unverified"
    [req] = [d for _, d in await env.events("portfolio.join-requested")]
    assert req["user_id"] == "late" and req["notify_user_ids"] == ["real"] and req["via"] == "registration"


async def test_unauthenticated_is_401(env: Env) -> None:
    r = await env.api.get("/api/portfolio/companies")
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_token"


async def test_accounting_flag_owner_admin_only(env: Env) -> None:
    await env.register("owner", FIRM_A)
    r = await env.add_member("owner", FIRM_A, "m1", "member")
    assert r.status_code == 201
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
    assert (await env.add_member("owner", FIRM_A, "adm", "admin")).status_code == 201
    # an admin cannot create owners
    r = await env.add_member("adm", FIRM_A, "x", "owner")
    assert r.status_code == 403
    assert (await env.add_member("adm", FIRM_A, "m", "member")).status_code == 201
    # the last owner cannot leave
    r = await env.api.delete(f"/api/portfolio/companies/{FIRM_A}/members/owner", headers=H("owner"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "last_owner"
    r = await env.api.get(f"/api/portfolio/companies/{FIRM_A}/members", headers=H("m"))
    assert {m["user_id"]: m["role"] for m in r.json()["items"]} == {"owner": "owner", "adm": "admin", "m": "member"}
    assert (await env.api.delete(f"/api/portfolio/companies/{FIRM_A}/members/m", headers=H("adm"))).status_code == 204
    acc = [(d["user_id"], d["role"], d["granted"], d["verified"], d["can_file"])
           for _, d in await env.events("portfolio.access-changed")]
    assert acc == [("owner", "owner", True, False, False), ("owner", "owner", True, True, True),
                   ("adm", "admin", True, True, True), ("m", "member", True, True, False),
                   ("m", "member", False, True, False)]
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
