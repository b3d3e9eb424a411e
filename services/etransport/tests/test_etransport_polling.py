"""Polling against the emulator with the real PostgreSQL: tracking, merge, deletion probe, pause/resume,
manual poll, and the API's scoping."""
from __future__ import annotations

import pytest
from _etransport_kit import CARRIERS, DECLARANTS, OUTSIDER, Harness, outbox_rows, start_harness
from spvhub_common.events.auth import ReauthorizationRequired, TokenRefreshed

C1, C2 = CARRIERS[0], CARRIERS[1]
D1, D2 = DECLARANTS[0], DECLARANTS[1]


@pytest.fixture
async def h(fresh_database: str, kafka_up: str, topic_prefix: str):
    harness, stop = await start_harness(fresh_database, topic_prefix, start_relay=False)
    yield harness
    await stop()


async def kinds(h: Harness) -> list[tuple[str, str, str, int]]:
    out = []
    for _row, (_env, ev) in await outbox_rows(h):
        out.append((ev.topic.split(".")[1], ev.uit, getattr(ev, "change", ""), getattr(ev, "change_version", 1)))
    return out


async def test_poll_merges_info_probes_vanished_uits_and_emits_once(h: Harness):
    await h.track(C1)
    u1 = await h.new_transport(D1, C1, nr_veh="CJ01AAA")
    u2 = await h.new_transport(D2, C1, tip_op="10")
    await h.new_transport(D1, OUTSIDER)
    [s] = await h.svc.poll_due()
    assert (s.created, s.polled_info, s.polled_lista, s.error) == (2, True, True, None)
    assert sorted(await kinds(h)) == sorted([("transport-assigned", u1, "", 1), ("transport-assigned", u2, "", 1)])

    await h.change_vehicle(D1, u1, "B77NEW")
    await h.delete(D2, u2)
    h.advance(minutes=11)
    [s] = await h.svc.poll_due()
    assert s.probes == 1 and s.deleted == 1 and not s.polled_lista
    ev = await kinds(h)
    assert ("transport-updated", u1, "vehicle_changed", 1) in ev and ("transport-updated", u2, "deleted", 1) in ev

    before = len(ev)
    h.advance(minutes=11)
    await h.svc.poll_due()
    await h.svc.poll_due()
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


async def test_reauthorization_pauses_and_refresh_resumes(h: Harness):
    cid = await h.track(C2)
    await h.svc.poll_due()
    ev = ReauthorizationRequired(connection_id=cid, company_cif=C2, user_id="u", reason="horizon_reached", message="")
    await h.uow_run(lambda uow: h.svc.on_reauthorization_required(ev, None, uow))
    h.advance(hours=1)
    assert await h.svc.poll_due() == []
    await h.grant("u2", C2)
    r = await h.api.post(f"/api/etransport/companies/{C2}/poll", headers=h.headers("u2"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "company_paused"
    ok = TokenRefreshed(connection_id=cid, company_cif=C2, access_expires_at=h.svc.now(),
                        refresh_expires_at=h.svc.now())
    await h.uow_run(lambda uow: h.svc.on_token_refreshed(ok, None, uow))
    assert [s.cif for s in await h.svc.poll_due()] == [C2]


async def test_auth_409_pauses_the_connection(h: Harness):
    cid = await h.track(C2)
    h.auth.reauth.add(cid)
    [s] = await h.svc.poll_due()
    assert s.error and "NoUsableConnection" in s.error
    await h.grant("u2", C2)
    r = await h.api.get("/api/etransport/companies", headers=h.headers("u2"))
    assert r.json()["items"][0]["status"] == "paused"


async def test_manual_poll_needs_access_and_is_rate_limited(h: Harness):
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
