"""Polling against the emulator with the real PostgreSQL: tracking, merge, deletion probe, pause/resume,
manual poll, and the API's scoping."""
from __future__ import annotations

from typing import Any

import pytest
from spvhub_common.events.auth import ReauthorizationRequired, TokenRefreshed
from spvhub_etransport import handlers

C1, C2 = "31000019", "31000027"  # = Harness.carriers[:2] (conftest)
D1, D2 = "12000012", "12000020"  # = Harness.declarants[:2]
OUTSIDER = "19000095"


@pytest.fixture
async def h(harness: Any) -> Any:
    hh = await harness(start_relay=False)
    assert hh.carriers[:2] == [C1, C2] and hh.declarants[:2] == [D1, D2] and hh.outsider == OUTSIDER
    return hh


async def kinds(h: Any) -> list[tuple[str, str, str, int]]:
    out = []
    for _row, (_env, ev) in await h.outbox_rows():
        out.append((ev.topic.split(".")[1], ev.uit, getattr(ev, "change", ""), getattr(ev, "change_version", 1)))
    return out


async def test_poll_merges_info_probes_vanished_uits_and_emits_once(h: Any):
    await h.track(C1)
    u1 = await h.new_transport(D1, C1, nr_veh="CJ01AAA")
    u2 = await h.new_transport(D2, C1, tip_op="10")
    await h.new_transport(D1, OUTSIDER)
    [s] = await handlers.poll_due(h.deps)
    assert (s.created, s.polled_info, s.polled_lista, s.error) == (2, True, True, None)
    from prometheus_client import REGISTRY
    first = REGISTRY.get_sample_value("etransport_sync_last_success_timestamp", {"cif": C1})
    assert first is not None and abs(first - h.emu_state.clock.now().timestamp()) < 120
    assert sorted(await kinds(h)) == sorted([("transport-assigned", u1, "", 1), ("transport-assigned", u2, "", 1)])

    await h.change_vehicle(D1, u1, "B77NEW")
    await h.delete(D2, u2)
    h.advance(minutes=11)
    [s] = await handlers.poll_due(h.deps)
    assert s.probes == 1 and s.deleted == 1 and not s.polled_lista
    ev = await kinds(h)
    assert ("transport-updated", u1, "vehicle_changed", 1) in ev and ("transport-updated", u2, "deleted", 1) in ev

    before = len(ev)
    h.advance(minutes=11)
    await handlers.poll_due(h.deps)
    await handlers.poll_due(h.deps)
    assert len(await kinds(h)) == before  # nothing new happened: nothing emitted

    await h.grant("u-carrier", C1)
    r = await h.api.get(f"/api/etransport/transports/{u1}", headers=h.headers("u-carrier"))
    body = r.json()
    assert r.status_code == 200 and body["vehicle"] == "B77NEW" and body["declared_vehicle"] == "CJ01AAA"
    assert body["history"][0]["kind"] == "created"
    assert any(x["kind"] == "vehicle_changed" for x in body["history"])
    r = await h.api.get("/api/etransport/transports", params={"company": C1, "state": "deleted"},
                        headers=h.headers("u-carrier"))
    assert [x["uit"] for x in r.json()["items"]] == [u2]


async def test_reauthorization_pauses_and_refresh_resumes(h: Any):
    cid = await h.track(C2)
    await handlers.poll_due(h.deps)
    ev = ReauthorizationRequired(connection_id=cid, company_cif=C2, user_id="u", reason="horizon_reached", message="")
    await h.uow_run(lambda uow: handlers.on_reauthorization_required(ev, None, uow, h.deps))
    h.advance(hours=1)
    assert await handlers.poll_due(h.deps) == []
    await h.grant("u2", C2)
    r = await h.api.post(f"/api/etransport/companies/{C2}/poll", headers=h.headers("u2"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "company_paused"
    ok = TokenRefreshed(connection_id=cid, company_cif=C2, access_expires_at=h.deps.clock.now(),
                        refresh_expires_at=h.deps.clock.now())
    await h.uow_run(lambda uow: handlers.on_token_refreshed(ok, None, uow, h.deps))
    assert [s.cif for s in await handlers.poll_due(h.deps)] == [C2]


async def test_auth_409_pauses_the_connection(h: Any):
    cid = await h.track(C2)
    h.auth.reauth.add(cid)
    [s] = await handlers.poll_due(h.deps)
    assert s.error and "NoUsableConnection" in s.error
    await h.grant("u2", C2)
    r = await h.api.get("/api/etransport/companies", headers=h.headers("u2"))
    assert r.json()["items"][0]["status"] == "paused"


async def test_manual_poll_needs_access_and_is_rate_limited(h: Any):
    await h.track(C1)
    await h.grant("u1", C1)
    await h.grant("u-decl", D1)
    await h.new_transport(D1, C1)
    r = await h.api.post(f"/api/etransport/companies/{C1}/poll", headers=h.headers("u-decl"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "no_access_to_company"
    r = await h.api.post(f"/api/etransport/companies/RO{C1}/poll", params={"lista": "true"}, headers=h.headers("u1"))
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 1 and r.json()["polled_lista"] is True
    r = await h.api.post(f"/api/etransport/companies/{C1}/poll", headers=h.headers("u1"))
    assert r.status_code == 429 and r.json()["error"]["code"] == "poll_too_soon"
    r = await h.api.get("/api/etransport/transports", headers=h.headers("u-decl"))
    assert r.json()["total"] == 0
    r = await h.api.get("/api/etransport/transports", headers={})
    assert r.status_code == 401


async def test_lista_daily_limit_is_not_retried_before_midnight_and_info_goes_on(h: Any):
    await h.track(C1)
    await h.emu.post("/__admin/switches", json={"et_list_cap": 1})
    await h.emu.get(f"/test/ETRANSPORT/ws/v1/lista/1/{C1}", headers=await h.bearer(C1))  # someone spent the day
    u = await h.new_transport(D1, C1)
    [s] = await handlers.poll_due(h.deps)
    assert s.polled_info and not s.polled_lista and "DailyLimitReached" in (s.error or "")
    assert s.created == 1 and (await kinds(h)) == [("transport-assigned", u, "", 1)]
    calls = (await h.emu.get("/__admin/counters")).json()["cui"][C1]
    h.advance(minutes=11)  # 10:11 the same day: info again, lista not (the budget refuses it before ANAF)
    [s] = await handlers.poll_due(h.deps)
    assert s.polled_info and not s.polled_lista
    assert (await h.emu.get("/__admin/counters")).json()["cui"][C1].get("etransport.lista") == calls.get(
        "etransport.lista")
    await h.emu.post("/__admin/switches", json={"et_list_cap": 1000})
    h.advance(hours=14)  # past local midnight
    [s] = await handlers.poll_due(h.deps)
    assert s.polled_lista and s.error is None
