"""Who may act for a carrier, with the real PostgreSQL and the in-process emulator: an unverified member sees no
transport and cannot poll (no ANAF call); a connection whose certificate has rights on a carrier never polls it
unless portfolio entitles it; the entitled connection is chosen by rank; an emptied snapshot stops the polling
with a stable reason; the health names whose authorization polls, never connection ids."""
from __future__ import annotations

import json
from typing import Any

import pytest
from spvhub_etransport import handlers

C1, C2 = "31000019", "31000027"  # = Harness.carriers[:2] (conftest)
D1 = "12000012"  # = Harness.declarants[0]


@pytest.fixture
async def h(harness: Any) -> Any:
    hh = await harness(start_relay=False)
    assert hh.carriers[:2] == [C1, C2] and hh.declarants[0] == D1
    return hh


async def calls(h: Any, cif: str) -> dict[str, int]:
    return dict((await h.emu.get("/__admin/counters")).json()["cui"].get(cif, {}))


async def test_unverified_member_sees_nothing_and_cannot_poll(h: Any):
    await h.track(C1)
    uit = await h.new_transport(D1, C1)
    [s] = await handlers.poll_due(h.deps)
    assert s.created == 1
    await h.grant("owner", C1)
    await h.grant("mallory", C1, verified=False)
    mallory = h.headers("mallory")
    before = await calls(h, C1)
    for method, path, params in (("GET", "/api/etransport/transports", {"company": C1}),
                                 ("GET", f"/api/etransport/transports/{uit}", {"carrier": C1}),
                                 ("POST", f"/api/etransport/companies/{C1}/poll", {"lista": "true"})):
        r = await h.api.request(method, path, params=params, headers=mallory)
        assert r.status_code == 403 and r.json()["error"]["code"] == "company_not_verified", (path, r.text)
        assert "verificat" in r.json()["error"]["message"]
    r = await h.api.get("/api/etransport/transports", headers=mallory)
    assert r.status_code == 200 and r.json()["total"] == 0
    r = await h.api.get(f"/api/etransport/transports/{uit}", headers=mallory)
    assert r.status_code == 404 and r.json()["error"]["code"] == "transport_not_found"
    assert (await h.api.get("/api/etransport/companies", headers=mallory)).json()["items"] == []
    assert await calls(h, C1) == before  # the refused poll called nothing
    # the verified owner: whose authorization polls, no connection id
    [co] = (await h.api.get("/api/etransport/companies", headers=h.headers("owner"))).json()["items"]
    assert co["synced_through"] == {"kind": "own", "firm_cif": None, "active": True}
    assert f"conn-{C1}" not in json.dumps(co)


async def test_only_entitled_connections_poll_by_rank_and_an_empty_snapshot_stops(h: Any):
    # the firm's certificate covers both carriers; portfolio entitles it for C1 (a client) only
    h.auth.certificates["c-firm"] = f"cert-{D1}"
    await h.emu.post(f"/__admin/certificates/cert-{D1}/rights", json={"grant": [C1, C2]})
    await h.entitle(C1, ("c-firm", D1))
    await h.entitle(C2)  # nobody may act for C2
    await h.new_transport(D1, C1)
    await h.new_transport(D1, C2)
    results = await handlers.poll_due(h.deps)
    assert [s.cif for s in results] == [C1] and results[0].created == 1
    assert await calls(h, C2) == {}, "a connection polled a carrier it is not entitled for"
    await h.grant("u1", C1)
    [co] = (await h.api.get("/api/etransport/companies", headers=h.headers("u1"))).json()["items"]
    assert co["status"] == "active"
    assert co["synced_through"] == {"kind": "accounting_firm", "firm_cif": D1, "active": True}
    assert "c-firm" not in json.dumps(co)

    # the carrier's own connection is entitled first: it is used; paused, the firm's one is
    await h.entitle(C1, (f"conn-{C1}", C1), ("c-firm", D1))
    h.auth.certificates[f"conn-{C1}"] = f"cert-{C1}"
    async with h.runtime.uow() as uow:
        from spvhub_etransport.adapters import repository as repo
        assert await repo.usable_connections(uow.session, C1) == [f"conn-{C1}", "c-firm"]
    from spvhub_common.events.auth import ReauthorizationRequired
    ev = ReauthorizationRequired(connection_id=f"conn-{C1}", company_cif=C1, user_id="u1", reason="unknown",
                                 message="x")
    await h.uow_run(lambda uow: handlers.on_reauthorization_required(ev, None, uow, h.deps))
    async with h.runtime.uow() as uow:
        assert await repo.usable_connections(uow.session, C1) == ["c-firm"]

    # the collaboration ends and nothing else is entitled: polling stops, the reason is stable
    await h.entitle(C1)
    [co] = (await h.api.get("/api/etransport/companies", headers=h.headers("u1"))).json()["items"]
    assert (co["status"], co["status_reason"], co["synced_through"]) == ("stopped", "no_entitled_connection", None)
    r = await h.api.post(f"/api/etransport/companies/{C1}/poll", headers=h.headers("u1"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "company_stopped", r.text
    before = await calls(h, C1)
    h.advance(minutes=30)
    assert await handlers.poll_due(h.deps) == []
    assert await calls(h, C1) == before
    # its transports stay readable by its verified people
    assert (await h.api.get("/api/etransport/transports", headers=h.headers("u1"))).json()["total"] == 1
