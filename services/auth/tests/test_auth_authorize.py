"""Acceptance: the authorize flow over HTTP through the emulator's certificate page, the rights check, and the
callback's refusals (tampered/expired state, replayed code, wrong redirect, ANAF errors)."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from spvhub_auth.adapters.orm import anaf_connections
from spvhub_common.events.auth import ConnectionAuthorized
from sqlalchemy import func, select

CIF = "1000017"


async def _connections(h) -> int:  # type: ignore[no-untyped-def]
    async with h.runtime.uow() as uow:
        return int((await uow.session.execute(select(func.count()).select_from(anaf_connections))).scalar() or 0)


# family_hosts: the emulator serves each ANAF host family only under its own prefix and auth is configured with
# four bases, so an OAuth call sent to the API host (or the reverse) fails here as it would against ANAF.
@pytest.mark.parametrize("harness", [{}, {"families": True}], indirect=True, ids=["one_base", "family_hosts"])
async def test_full_authorize_flow_gives_an_active_connection(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    user = await h.signup(name="Maria Ionescu")
    await h.grant(user["user"]["id"], CIF)
    started = await h.start(user["headers"], "RO" + CIF)
    assert started["company_cif"] == CIF
    q = parse_qs(urlsplit(started["authorize_url"]).query)
    assert q["redirect_uri"] == ["https://spvhub.test/api/auth/anaf/callback"] and q["response_type"] == ["code"]
    before = h.clock.now()
    r = await h.follow_to_callback(await h.browse_authorize(started["authorize_url"], "acc"))
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["state"] == "active" and c["company_cif"] == CIF and c["rights_checked"] is True
    assert c["authorizing_person"] == "Maria Ionescu"
    assert c["certificate_serial"] == h.emu_state.certs["acc"].serial
    assert sorted(c["services"]) == ["efactura", "etransport"]
    # dates: access 90 days, refresh 365 days, must act by the refresh expiry (before the 730-day horizon)
    from datetime import datetime
    auth_at = datetime.fromisoformat(c["authorized_at"])
    assert abs((auth_at - before).total_seconds()) < 5
    acc = datetime.fromisoformat(c["access_expires_at"])
    ref = datetime.fromisoformat(c["refresh_expires_at"])
    assert abs((acc - auth_at) - timedelta(days=90)) < timedelta(seconds=5)
    assert abs((ref - auth_at) - timedelta(days=365)) < timedelta(seconds=5)
    assert datetime.fromisoformat(c["must_act_by"]) == ref
    assert abs((datetime.fromisoformat(c["next_renewal_at"]) - auth_at) - timedelta(days=67.5)) < timedelta(seconds=5)
    # the user sees it in the list and in the detail view
    lst = (await h.client.get("/api/auth/anaf/connections", headers=user["headers"])).json()["items"]
    assert [x["id"] for x in lst] == [c["id"]]
    detail = (await h.client.get(f"/api/auth/anaf/connections/{c['id']}", headers=user["headers"])).json()
    assert detail["authorizing_person"] == "Maria Ionescu" and detail["state"] == "active"
    # another user without access sees nothing
    other = await h.signup(name="Altcineva")
    assert (await h.client.get("/api/auth/anaf/connections", headers=other["headers"])).json()["items"] == []
    assert (await h.client.get(f"/api/auth/anaf/connections/{c['id']}", headers=other["headers"])).status_code == 404
    # event from the outbox
    evs = await h.events("auth.connection-authorized")
    assert len(evs) == 1
    ev = evs[0][1]
    assert isinstance(ev, ConnectionAuthorized) and ev.connection_id == c["id"] and ev.company_cif == CIF
    assert ev.holder_name == "Maria Ionescu" and ev.certificate_serial == c["certificate_serial"]
    # the internal endpoint hands out a working access token and records the use
    tok = await h.access_token(c["id"])
    assert tok.status_code == 200
    body = tok.json()
    assert set(body) == {"connection_id", "access_token", "expires_at", "certificate_serial", "company_cif", "status"}
    assert (await h.anaf_list(body["access_token"], CIF)).status_code == 200
    grants = (await h.client.get(f"/internal/connections/{c['id']}/grants",
                                 headers={"X-Service-Token": "dev-service-token"})).json()["items"]
    assert grants[-1]["caller_service"] == "efactura" and grants[-1]["outcome"] == "granted"
    # internal endpoints require the service credential
    assert (await h.client.get(f"/internal/connections/{c['id']}/access-token")).status_code == 401
    assert (await h.client.get("/internal/connections/nope/access-token",
                               headers={"X-Service-Token": "dev-service-token"})).json()["error"]["code"] == \
        "no_connection"
    if h.families:
        assert started["authorize_url"].startswith("http://emulator/logincert.anaf.ro/anaf-oauth2/v1/authorize?")
        refreshed = await h.deps.anaf.refresh(await h.stored_refresh_token(c["id"]))  # the token endpoint, again
        h.secrets.update({refreshed.access_token, refreshed.refresh_token})
        assert h.emu_app.refused == []  # no call went to a host that lacks its path


async def test_start_requires_access_to_the_company(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    user = await h.signup()
    r = await h.client.post("/api/auth/anaf/authorizations", json={"company_cif": CIF}, headers=user["headers"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "no_access_to_company"
    r = await h.client.post("/api/auth/anaf/authorizations", json={"company_cif": "abc"}, headers=user["headers"])
    assert r.status_code == 422 and r.json()["error"]["code"] == "cif_not_numeric"
    assert (await h.client.post("/api/auth/anaf/authorizations", json={"company_cif": CIF})).status_code == 401


async def test_certificate_without_rights_is_told_which_cif_and_why(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    user = await h.signup()
    await h.grant(user["user"]["id"], CIF)
    # the carrier's certificate has rights only on 3000030
    r = await h.authorize(user["headers"], CIF, certificate="carrier")
    assert r.status_code == 403
    err = r.json()["error"]
    assert err["code"] == "no_spv_rights" and err["details"]["cif"] == CIF
    assert CIF in err["message"] and "another company's certificate" in err["message"]
    assert "less than a day old" in err["message"]
    assert err["details"]["certificate_serial"] == h.emu_state.certs["carrier"].serial
    assert "success" not in err["message"].lower()
    # a certificate with no rights at all
    r = await h.authorize(user["headers"], CIF, certificate="nobody")
    assert r.status_code == 403 and r.json()["error"]["code"] == "no_spv_rights"
    assert await _connections(h) == 0
    assert await h.events("auth.connection-authorized") == []


async def test_tampered_and_expired_state_replayed_code_wrong_redirect(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    user = await h.signup()
    await h.grant(user["user"]["id"], CIF)

    # tampered state: the browser comes back with a modified state
    started = await h.start(user["headers"], CIF)
    anaf = await h.browse_authorize(started["authorize_url"], "acc")
    loc = urlsplit(anaf.headers["location"])
    q = parse_qs(loc.query)
    head, payload, sig = q["state"][0].split(".")
    forged = head + "." + payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + sig
    r = await h.client.get(f"{loc.path}?{urlencode({'code': q['code'][0], 'state': forged})}")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_state"
    r = await h.client.get(f"{loc.path}?{urlencode({'code': q['code'][0], 'state': 'garbage'})}")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_state"
    r = await h.client.get(f"{loc.path}?{urlencode({'code': q['code'][0]})}")
    assert r.status_code == 400 and r.json()["error"]["code"] == "missing_state"

    # the genuine callback works once; replaying it (same code, same state) is refused
    ok = await h.client.get(f"{loc.path}?{loc.query}")
    assert ok.status_code == 200, ok.text
    replay = await h.client.get(f"{loc.path}?{loc.query}")
    assert replay.status_code == 409 and replay.json()["error"]["code"] == "state_already_used"
    # the same code with a fresh state: ANAF refuses the spent code
    fresh = await h.start(user["headers"], CIF)
    fresh_state = parse_qs(urlsplit(fresh["authorize_url"]).query)["state"][0]
    r = await h.client.get(f"{loc.path}?{urlencode({'code': q['code'][0], 'state': fresh_state})}")
    assert r.status_code == 400 and r.json()["error"]["code"] == "anaf_code_rejected"
    assert "60" in r.json()["error"]["message"]
    assert await _connections(h) == 1

    # expired state: the person took longer than the state's life (10 minutes) at ANAF
    started = await h.start(user["headers"], CIF)
    anaf = await h.browse_authorize(started["authorize_url"], "acc")
    h.emu_state.clock.advance(11 * 60)
    r = await h.follow_to_callback(anaf)
    assert r.status_code == 400 and r.json()["error"]["code"] == "state_expired"

    # code older than ANAF's 60 seconds
    started = await h.start(user["headers"], CIF)
    anaf = await h.browse_authorize(started["authorize_url"], "acc")
    h.emu_state.clock.advance(61)
    r = await h.follow_to_callback(anaf)
    assert r.status_code == 400 and r.json()["error"]["code"] == "anaf_code_rejected"

    # wrong redirect: a code ANAF issued for another registered callback address, delivered to ours
    started = await h.start(user["headers"], CIF)
    q = parse_qs(urlsplit(started["authorize_url"]).query)
    other = {k: v[0] for k, v in q.items()}
    other["redirect_uri"] = "https://client.example/cb"
    page = await h.browse_authorize(f"{h.oauth_prefix}/anaf-oauth2/v1/authorize?" + urlencode(other), "acc")
    loc = urlsplit(page.headers["location"])
    assert loc.netloc == "client.example"
    r = await h.client.get(f"/api/auth/anaf/callback?{loc.query}")
    assert r.status_code == 400 and r.json()["error"]["code"] == "anaf_code_rejected"
    assert await _connections(h) == 1
    assert len(await h.events("auth.connection-authorized")) == 1


async def test_anaf_authorize_errors_become_clear_messages(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    user = await h.signup()
    await h.grant(user["user"]["id"], CIF)
    # cancelled at the certificate page
    started = await h.start(user["headers"], CIF)
    r = await h.follow_to_callback(await h.browse_authorize(started["authorize_url"], "acc", action="cancel"))
    assert r.status_code == 400 and r.json()["error"]["code"] == "anaf_access_denied"
    assert "PIN" in r.json()["error"]["message"] and "start the authorization again" in r.json()["error"]["message"]
    # wrong PIN
    started = await h.start(user["headers"], CIF)
    r = await h.follow_to_callback(await h.browse_authorize(started["authorize_url"], "acc", pin="0000"))
    assert r.status_code == 400 and r.json()["error"]["code"] == "anaf_access_denied"
    assert await _connections(h) == 0


async def test_revoke_connection(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    user = await h.signup()
    await h.grant(user["user"]["id"], CIF)
    c = (await h.authorize(user["headers"], CIF)).json()
    r = await h.client.post(f"/api/auth/anaf/connections/{c['id']}/revoke", headers=user["headers"])
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    tok = await h.access_token(c["id"])
    assert tok.status_code == 409 and tok.json()["error"]["code"] == "reauthorization_required"
    evs = await h.events("auth.connection-revoked")
    assert len(evs) == 1 and evs[0][1].connection_id == c["id"]
    async with h.runtime.uow() as uow:
        row = (await uow.session.execute(select(anaf_connections).where(anaf_connections.c.id == c["id"]))).one()
    assert row.access_token_enc is None and row.refresh_token_enc is None


@pytest.mark.parametrize("harness", [{"settings": {"access_wait_seconds": 20}, "build": {"start_consumers": True}}],
                         indirect=True)
async def test_first_authorization_of_a_just_registered_company(harness, kafka_up) -> None:  # type: ignore[no-untyped-def]
    """Portfolio publishes `portfolio.access-changed` when the owner registers the company; the owner starts the
    authorization at once and auth waits for its read model instead of refusing."""
    from aiokafka import AIOKafkaProducer
    from spvhub_common.events import encode, to_envelope
    from spvhub_common.events.portfolio import AccessChanged
    h = harness
    user = await h.signup()
    ev = AccessChanged(cif=CIF, user_id=user["user"]["id"], role="owner", granted=True)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_up)
    await producer.start()
    try:
        await producer.send_and_wait(h.settings.kafka_topic_prefix + ev.topic, encode(to_envelope(ev, "portfolio")),
                                     key=CIF.encode())
    finally:
        await producer.stop()
    r = await h.authorize(user["headers"], CIF)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "active"
