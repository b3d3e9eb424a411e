"""Acceptance: renewal without gaps (days 70/85/95), two replicas racing, transient failures with backoff,
horizon warnings then re-authorization, a renewed certificate detected."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from spvhub_auth import handlers
from spvhub_auth.adapters.orm import anaf_connections
from sqlalchemy import select

CIF = "1000017"
SVC = {"X-Service-Token": "dev-service-token", "X-Service-Name": "efactura"}


async def _row(h, cid):  # type: ignore[no-untyped-def]
    async with h.runtime.uow() as uow:
        return (await uow.session.execute(select(anaf_connections).where(anaf_connections.c.id == cid))).one()


@pytest.mark.parametrize("harness", [{"settings": {"renewal_interval_seconds": 0.2}, "build": {"start_jobs": True}}],
                         indirect=True)
async def test_renewed_before_expiry_on_days_70_85_95(harness) -> None:  # type: ignore[no-untyped-def]
    """The real periodic job runs in the background; only the emulator clock moves."""
    h = harness
    c, _user = await h.authorized(CIF)
    day0 = h.clock.now()
    first = (await h.access_token(c["id"])).json()["access_token"]
    for day in (70, 85, 95):
        h.at_day(day, day0)
        if day == 70:
            async def renewed() -> bool:
                return len(await h.events("auth.token-refreshed")) == 1 and (await _row(h, c["id"])).state == "active"
            await h.wait_for(renewed)
        else:
            await asyncio.sleep(0.6)  # a few job passes: nothing is due
        tok = await h.access_token(c["id"])
        assert tok.status_code == 200, tok.text
        body = tok.json()
        assert datetime.fromisoformat(body["expires_at"]) > h.clock.now() + timedelta(days=30)
        listed = await h.anaf_list(body["access_token"], CIF)
        assert listed.status_code == 200, listed.text
    # renewed exactly once (at 75% of 90 days) and the original token really is dead by day 95
    assert (await h.counters())["oauth"]["refresh_token"] == 1
    assert (await h.anaf_list(first, CIF)).status_code == 401
    ev = (await h.events("auth.token-refreshed"))[0][1]
    assert ev.connection_id == c["id"] and ev.after_warning is False
    assert await h.events("auth.reauthorization-required") == []
    row = await _row(h, c["id"])
    assert row.last_refreshed_at is not None and row.last_refreshed_at < day0 + timedelta(days=90)


async def test_two_replicas_racing_refresh_exactly_once(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    c, _user = await h.authorized(CIF)
    day0 = h.clock.now()
    old_refresh = await h.stored_refresh_token(c["id"])
    app2, runtime2 = h.build_replica()
    async with app2.router.lifespan_context(app2):
        d2 = app2.state.deps
        # slow ANAF token endpoint so both runners are inside the race window at once
        await h.emu.post("/__admin/faults", json={"family": "oauth", "latency_ms": [300, 400]})
        h.at_day(70, day0)
        results = await asyncio.gather(handlers.renew_due(h.deps), handlers.renew_due(d2),
                                       handlers.renew_connection(h.deps, c["id"]),
                                       handlers.renew_connection(d2, c["id"]))
        await h.emu.delete("/__admin/faults")
    assert (await h.counters())["oauth"]["refresh_token"] == 1
    outcomes = [r for r in results if isinstance(r, str)] + [k for r in results if isinstance(r, dict) for k in r]
    assert outcomes.count("renewed") == 1, results
    row = await _row(h, c["id"])
    assert row.state == "active" and row.renew_attempts == 0
    new_refresh = await h.stored_refresh_token(c["id"])
    assert new_refresh != old_refresh
    # both rotated tokens were stored: the new access token works, the new refresh token is the live one
    tok = (await h.access_token(c["id"])).json()["access_token"]
    assert (await h.anaf_list(tok, CIF)).status_code == 200
    assert len(await h.events("auth.token-refreshed")) == 1
    assert await h.events("auth.reauthorization-required") == []
    # the next renewal with the stored refresh token succeeds (it was not lost to the race)
    h.at_day(140, day0)
    assert await handlers.renew_connection(h.deps, c["id"]) == "renewed"


async def test_internal_refresh_is_single_flight(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    c, _user = await h.authorized(CIF)
    await h.emu.post("/__admin/faults", json={"family": "oauth", "latency_ms": [200, 300]})
    h.emu_state.clock.advance(3600)
    rs = await asyncio.gather(*[h.client.post(f"/internal/connections/{c['id']}/refresh", headers=SVC)
                                for _ in range(4)])
    await h.emu.delete("/__admin/faults")
    assert all(r.status_code == 200 for r in rs), [r.text for r in rs]
    for r in rs:
        h.secrets.add(r.json()["access_token"])
    assert len({r.json()["access_token"] for r in rs}) == 1
    assert (await h.counters())["oauth"]["refresh_token"] == 1
    grants = (await h.client.get(f"/internal/connections/{c['id']}/grants", headers=SVC)).json()["items"]
    assert [g["kind"] for g in grants].count("refresh") == 4


async def test_transient_failure_is_retried_with_backoff(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    c, _user = await h.authorized(CIF)
    day0 = h.clock.now()
    await h.emu.post("/__admin/faults", json={"family": "oauth", "error_rate": 1.0, "error_status": 503})
    h.at_day(70, day0)
    assert await handlers.renew_due(h.deps) == {"retry_later": 1}
    row = await _row(h, c["id"])
    assert row.state == "active" and row.renew_attempts == 1 and row.next_attempt_at > h.clock.now()
    assert await handlers.renew_due(h.deps) == {}  # backing off: not tried again at once
    h.emu_state.clock.advance(h.settings.renewal_backoff_base_seconds + 1)
    assert await handlers.renew_due(h.deps) == {"retry_later": 1}
    row = await _row(h, c["id"])
    assert row.renew_attempts == 2
    assert row.next_attempt_at - h.clock.now() > timedelta(seconds=h.settings.renewal_backoff_base_seconds * 1.5)
    await h.emu.delete("/__admin/faults")
    h.emu_state.clock.advance(3 * h.settings.renewal_backoff_base_seconds)
    assert await handlers.renew_due(h.deps) == {"renewed": 1}
    assert (await _row(h, c["id"])).renew_attempts == 0
    assert await h.events("auth.reauthorization-required") == []


async def test_horizon_warnings_then_reauthorization(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    c, user = await h.authorized(CIF)
    day0 = h.clock.now()
    # two years of automatic renewals (steps shorter than the 90-day access life)
    for day in range(50, 700, 50):
        h.at_day(day, day0)
        await handlers.run_lifecycle(h.deps)
        tok = await h.access_token(c["id"])
        assert tok.status_code == 200, (day, tok.text)
        assert (await h.anaf_list(tok.json()["access_token"], CIF)).status_code == 200, day
    assert await h.events("auth.token-expiring") == []
    row = await _row(h, c["id"])
    assert row.must_act_by == row.family_expires_at  # the 730-day horizon is now the earliest limit
    horizon = row.family_expires_at
    for offset in (30, 14, 7, 1):
        h.emu_state.clock.set(horizon - timedelta(days=offset) + timedelta(minutes=1))
        await handlers.run_lifecycle(h.deps)
        await handlers.run_lifecycle(h.deps)  # exactly once, however often the job runs
        warnings = await h.events("auth.token-expiring")
        assert [w.offset_days for _, w in warnings][-1] == offset
        assert len(warnings) == [30, 14, 7, 1].index(offset) + 1
        assert warnings[-1][1].days_left == offset and warnings[-1][1].must_act_by == horizon
        assert (await _row(h, c["id"])).state in ("expiring", "active")
        days = REGISTRY.get_sample_value("auth_connection_must_act_days", {"connection": c["id"], "cif": CIF})
        assert days is not None and offset - 0.01 < days < offset  # the gauge SRE alerts on follows the clock
    detail = (await h.client.get(f"/api/auth/anaf/connections/{c['id']}", headers=user["headers"])).json()
    assert detail["state"] == "expiring" and detail["warnings_sent_days"] == [30, 14, 7, 1]
    assert (await h.access_token(c["id"])).status_code == 200  # still working until the horizon
    h.emu_state.clock.set(horizon + timedelta(minutes=5))
    await handlers.run_lifecycle(h.deps)
    reauth = await h.events("auth.reauthorization-required")
    assert len(reauth) == 1
    assert REGISTRY.get_sample_value("auth_connection_must_act_days", {"connection": c["id"], "cif": CIF}) == 0
    ev = reauth[0][1]
    assert ev.reason == "horizon_reached" and ev.connection_id == c["id"] and CIF in ev.message
    r = await h.access_token(c["id"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "reauthorization_required"
    assert r.json()["error"]["details"]["reason"] == "horizon_reached"
    assert len(await h.events("auth.token-expiring")) == 4
    # the person authorizes again: the same connection is active again, with a new horizon
    again = await h.authorize(user["headers"], CIF)
    assert again.status_code == 200 and again.json()["id"] == c["id"] and again.json()["state"] == "active"
    assert (await h.access_token(c["id"])).status_code == 200


async def test_renewed_certificate_is_detected(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    c, user = await h.authorized(CIF)
    old_serial = c["certificate_serial"]
    renewed = (await h.emu.post("/__admin/certificates/acc/renew")).json()
    assert renewed["old_serial"] == old_serial
    # a service calling ANAF gets 403, asks auth to refresh: a person must act, with the reason
    tok = (await h.access_token(c["id"])).json()["access_token"]
    assert (await h.anaf_list(tok, CIF)).status_code == 403
    r = await h.client.post(f"/internal/connections/{c['id']}/refresh", headers=SVC)
    assert r.status_code == 409
    assert r.json()["error"]["details"]["reason"] == "certificate_renewed"
    ev = (await h.events("auth.reauthorization-required"))[-1][1]
    assert ev.reason == "certificate_renewed" and old_serial in ev.message
    # the renewal job path reaches the same conclusion for another connection
    c2, _ = await h.authorized("2000023", user=user)
    await h.emu.post("/__admin/certificates/acc/renew")
    h.at_day(70, h.clock.now())
    await handlers.run_lifecycle(h.deps)
    reasons = [(e.connection_id, e.reason) for _, e in await h.events("auth.reauthorization-required")]
    assert (c2["id"], "certificate_renewed") in reasons
    # authorizing with the renewed certificate restores the connection, with the new serial
    again = (await h.authorize(user["headers"], CIF)).json()
    assert again["id"] == c["id"] and again["certificate_serial"] == h.emu_state.certs["acc"].serial != old_serial
