"""Invitations through the HTTP API against the real PostgreSQL: send (one and bulk), link, preview, claim,
accept/decline, expiry after 15 days (moved clock), resend, revoke, and the events each step publishes."""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from invkit import CLIENT_A, CLIENT_B, FIRM, OTHER, Env, setup_firm
from spvhub_common.events.portfolio import AccessChanged, CompanyUpdated, RightsDiscovered
from spvhub_invitations import handlers
from spvhub_invitations.adapters.orm import invitations
from sqlalchemy import select

SVC = {"X-Service-Token": "dev-service-token"}


def item(cif: str, **kw: str) -> dict[str, str]:
    return {"client_cif": cif, "name": kw.get("name", "Ana Popescu"), "email": kw.get("email", "ana@firmax.ro"),
            "phone": kw.get("phone", "0722 123 456")}


async def send(env: Env, *items: dict, user: str = "firm-user", firm: str = FIRM):
    return await env.client.post("/api/invitations", json={"firm_cif": firm, "invitations": list(items)},
                                 headers=env.h(user))


async def token_of(env: Env, invitation_id: str) -> str:
    r = await env.client.get(f"/internal/invitations/{invitation_id}/link", headers=SVC)
    assert r.status_code == 200, r.text
    link = r.json()["link"]
    assert link.startswith("https://spv.example.ro/join?invitation=")
    return parse_qs(urlparse(link).query)["invitation"][0]


async def test_full_flow_send_link_preview_claim_accept(env: Env):
    await setup_firm(env)
    r = await send(env, item("RO" + CLIENT_A))
    assert r.status_code == 201, r.text
    inv = r.json()["results"][0]["invitation"]
    assert inv["status"] == "pending" and inv["phone"] == "+40722123456" and inv["client_name"] == "Firma X SRL"
    assert inv["expires_at"].startswith("2025-03-16T09:00")

    # the token is stored only as a hash; the link endpoint re-derives it
    token = await token_of(env, inv["id"])
    async with env.runtime.sessions() as s:
        row = (await s.execute(select(invitations))).mappings().one()
    assert token not in str(dict(row)) and len(row["token_hash"]) == 64
    assert await token_of(env, inv["id"]) == token  # stable until re-sent
    assert (await env.client.get(f"/internal/invitations/{inv['id']}/link")).status_code == 401

    p = await env.client.get("/api/invitations/preview", params={"token": token})
    assert p.status_code == 200, p.text
    assert p.json()["firm"] == {"cif": FIRM, "name": "Contabil Expert SRL"}
    assert p.json()["client_company"]["name"] == "Firma X SRL"

    c = await env.client.post("/api/invitations/claim", json={"token": token}, headers=env.h("client-user"))
    assert c.status_code == 200, c.text
    assert c.json()["status"] == "claimed" and c.json()["claimed_by"] == "client-user"

    again = await env.client.post("/api/invitations/claim", json={"token": token}, headers=env.h("intruder"))
    assert again.status_code == 409 and again.json()["error"]["code"] == "invitation_already_used"
    assert (await env.client.get("/api/invitations/preview", params={"token": token})).status_code == 409
    assert (await env.client.get(f"/internal/invitations/{inv['id']}/link", headers=SVC)).status_code == 410

    # only a verified owner or administrator of the client answers: portfolio made the claimer one (the client had
    # no verified owner and the firm's certificate covers it), which reaches this service as access-changed
    r = await env.client.post(f"/api/invitations/{inv['id']}/accept", headers=env.h("intruder"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "no_access_to_company"
    await env.feed(AccessChanged(cif=CLIENT_A, user_id="client-user", role="owner", granted=True))
    a = await env.client.post(f"/api/invitations/{inv['id']}/accept", headers=env.h("client-user"))
    assert a.status_code == 200 and a.json()["status"] == "accepted"
    a2 = await env.client.post(f"/api/invitations/{inv['id']}/accept", headers=env.h("client-user"))
    assert a2.status_code == 200  # a repeated click changes nothing
    d = await env.client.post(f"/api/invitations/{inv['id']}/decline", headers=env.h("client-user"))
    assert d.status_code == 409 and d.json()["error"]["code"] == "invitation_already_answered"

    mine = await env.client.get("/api/invitations/received", headers=env.h("client-user"))
    assert [i["id"] for i in mine.json()] == [inv["id"]]
    lst = await env.client.get("/api/invitations", params={"firm_cif": FIRM}, headers=env.h("firm-user"))
    assert [i["status"] for i in lst.json()["items"]] == ["accepted"]

    topics = [t for t, _ in await env.outbox()]
    assert topics == ["invitations.invitation-sent", "invitations.invitation-claimed",
                      "invitations.invitation-accepted"]
    for _, data in await env.outbox():
        assert token not in str(data) and data["firm_name"] == "Contabil Expert SRL"
    claimed = (await env.outbox())[1][1]
    assert claimed["user_id"] == "client-user" and claimed["client_cif"] == CLIENT_A


async def test_claim_after_16_days_is_refused_clearly_and_the_job_expires_it(env: Env):
    await setup_firm(env)
    inv = (await send(env, item(CLIENT_A))).json()["results"][0]["invitation"]
    token = await token_of(env, inv["id"])
    env.clock.advance(days=16)
    r = await env.client.post("/api/invitations/claim", json={"token": token}, headers=env.h("client-user"))
    assert r.status_code == 410
    err = r.json()["error"]
    assert err["code"] == "invitation_expired" and "15 days" in err["message"]
    assert (await env.client.get("/api/invitations/preview", params={"token": token})).json()["error"]["code"] \
        == "invitation_expired"
    assert await handlers.expire_due(env.app.state.deps) == 1
    assert await handlers.expire_due(env.app.state.deps) == 0
    expired = [d for t, d in await env.outbox() if t == "invitations.invitation-expired"]
    assert len(expired) == 1 and expired[0]["invitation_id"] == inv["id"]
    lst = await env.client.get("/api/invitations", params={"firm_cif": FIRM}, headers=env.h("firm-user"))
    assert lst.json()["items"][0]["status"] == "expired"

    # the firm re-sends: a new link, valid 15 days from now; the old token stays dead
    rs = await env.client.post(f"/api/invitations/{inv['id']}/resend", headers=env.h("firm-user"),
                               json={"email": "ana.popescu@firmax.ro"})
    assert rs.status_code == 200, rs.text
    assert rs.json()["status"] == "pending" and rs.json()["send_count"] == 2
    new_token = await token_of(env, inv["id"])
    assert new_token != token
    assert (await env.client.post("/api/invitations/claim", json={"token": token},
                                  headers=env.h("client-user"))).json()["error"]["code"] == "invitation_not_found"
    ok = await env.client.post("/api/invitations/claim", json={"token": new_token}, headers=env.h("client-user"))
    assert ok.status_code == 200
    sent = [d for t, d in await env.outbox() if t == "invitations.invitation-sent"]
    assert [d["resent"] for d in sent] == [False, True] and sent[1]["email"] == "ana.popescu@firmax.ro"


async def test_bulk_reports_each_item_and_writes_only_the_good_ones(env: Env):
    await setup_firm(env)
    r = await send(env, item(CLIENT_A), item(CLIENT_B, email="not-an-email"), item(OTHER),
                   item(CLIENT_B, phone="12345"), item(CLIENT_A), item(FIRM))
    assert r.status_code == 207, r.text
    body = r.json()
    codes = [(x["ok"], (x["error"] or {}).get("code")) for x in body["results"]]
    assert codes == [(True, None), (False, "invalid_email"), (False, "client_not_discovered"),
                     (False, "invalid_phone"), (False, "duplicate_in_request"), (False, "cannot_invite_self")]
    assert body["created"] == 1 and body["failed"] == 5
    # the invalid client B can now be sent alone; a second invitation to A is refused as already invited
    r2 = await send(env, item(CLIENT_B, phone="+40 21 312 34 56"), item(CLIENT_A))
    assert [(x["ok"], (x["error"] or {}).get("code")) for x in r2.json()["results"]] == \
        [(True, None), (False, "already_invited")]
    async with env.runtime.sessions() as s:
        assert len((await s.execute(select(invitations))).all()) == 2
    assert len(await env.outbox()) == 2


async def test_a_cif_failing_the_platforms_check_is_refused_per_item_and_for_the_firm(env: Env):
    await setup_firm(env)
    r = await send(env, item("RO22222220"), item("12AB"), item(CLIENT_A))
    assert r.status_code == 207, r.text
    assert [(x["ok"], (x["error"] or {}).get("code")) for x in r.json()["results"]] == \
        [(False, "cif_bad_control_digit"), (False, "cif_not_numeric"), (True, None)]
    r = await env.client.get("/api/invitations", params={"firm_cif": "RO11111111"}, headers=env.h("firm-user"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "cif_bad_control_digit", r.text
    async with env.runtime.sessions() as s:
        assert len((await s.execute(select(invitations))).all()) == 1
    assert len(await env.outbox()) == 1


async def test_firm_preconditions_each_have_their_own_error(env: Env):
    from spvhub_common.events.portfolio import CompanyRegistered
    # no access to the firm at all
    r = await send(env, item(CLIENT_A), user="stranger")
    assert r.status_code == 403 and r.json()["error"]["code"] == "no_access_to_company"
    await env.feed(CompanyRegistered(cif=FIRM, name="Contabil Expert SRL", provides_accounting_services=False))
    await env.feed(AccessChanged(cif=FIRM, user_id="firm-user", role="owner", granted=True))
    r = await send(env, item(CLIENT_A))
    assert r.status_code == 409 and r.json()["error"]["code"] == "accounting_services_flag_missing"
    cand = await env.client.get("/api/invitations/candidates", params={"firm_cif": FIRM}, headers=env.h("firm-user"))
    assert cand.json()["missing"] == ["accounting_services_flag", "efactura_authorization"]
    await env.feed(CompanyUpdated(cif=FIRM, name="Contabil Expert SRL", provides_accounting_services=True))
    r = await send(env, item(CLIENT_A))
    assert r.status_code == 409 and r.json()["error"]["code"] == "no_efactura_authorization"
    await env.feed(RightsDiscovered(connection_id="c1", holder_cif="RO" + FIRM, cifs=[CLIENT_A]))
    assert (await send(env, item(CLIENT_A))).status_code == 201
    # rights lost on the next discovery: the client can no longer be invited
    await env.feed(RightsDiscovered(connection_id="c1", holder_cif=FIRM, cifs=[], lost=[CLIENT_A]))
    cand = await env.client.get("/api/invitations/candidates", params={"firm_cif": FIRM}, headers=env.h("firm-user"))
    assert cand.json()["clients"] == [] and cand.json()["missing"] == []


async def test_candidates_revoke_and_decline(env: Env):
    await setup_firm(env)
    res = (await send(env, item(CLIENT_A), item(CLIENT_B, email="ion@brutaria.ro"))).json()["results"]
    a, b = res[0]["invitation"], res[1]["invitation"]
    cand = (await env.client.get("/api/invitations/candidates", params={"firm_cif": FIRM},
                                 headers=env.h("firm-user"))).json()
    assert [(c["client_cif"], c["invitation"]["status"]) for c in cand["clients"]] == \
        [(CLIENT_A, "pending"), (CLIENT_B, "pending")]
    token_a = await token_of(env, a["id"])
    rv = await env.client.post(f"/api/invitations/{a['id']}/revoke", headers=env.h("firm-user"))
    assert rv.status_code == 200 and rv.json()["status"] == "revoked"
    assert (await env.client.post(f"/api/invitations/{a['id']}/revoke", headers=env.h("other"))).status_code == 403
    r = await env.client.post("/api/invitations/claim", json={"token": token_a}, headers=env.h("client-user"))
    assert r.status_code == 410 and r.json()["error"]["code"] == "invitation_revoked"
    # revoked: the firm may invite the client again
    assert (await send(env, item(CLIENT_A))).status_code == 201

    token_b = await token_of(env, b["id"])
    await env.client.post("/api/invitations/claim", json={"token": token_b}, headers=env.h("ion"))
    await env.feed(AccessChanged(cif=CLIENT_B, user_id="ion", role="owner", granted=True))
    d = await env.client.post(f"/api/invitations/{b['id']}/decline", headers=env.h("ion"))
    assert d.status_code == 200 and d.json()["status"] == "declined"
    topics = [t for t, _ in await env.outbox()]
    assert topics.count("invitations.invitation-revoked") == 1 and topics[-1] == "invitations.invitation-declined"


async def test_bad_tokens_and_validation(env: Env):
    r = await env.client.post("/api/invitations/claim", json={"token": "x" * 43}, headers=env.h("u"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "invitation_not_found"
    r = await env.client.post("/api/invitations/claim", json={"token": "x" * 43})
    assert r.status_code == 401
    r = await env.client.post("/api/invitations", json={"firm_cif": FIRM, "invitations": []}, headers=env.h("u"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


async def test_the_preview_names_a_client_known_only_from_the_firms_rights_discovery(env: Env):
    await setup_firm(env)
    # OTHER is on the firm's certificate but nobody registered it on the platform yet: only the registry names it
    await env.feed(RightsDiscovered(connection_id="conn-1", holder_cif=FIRM, cifs=[FIRM, CLIENT_A, CLIENT_B, OTHER],
                                    gained=[OTHER], services=["efactura"],
                                    names={OTHER: " NOU VENIT SRL ", CLIENT_A: "NUME DIN REGISTRU"}))
    r = await send(env, item(OTHER))
    assert r.status_code == 201, r.text
    inv = r.json()["results"][0]["invitation"]
    assert inv["client_name"] == "NOU VENIT SRL"
    p = await env.client.get("/api/invitations/preview", params={"token": await token_of(env, inv["id"])})
    assert p.status_code == 200, p.text
    assert p.json()["client_company"] == {"cif": OTHER, "kind": "cif", "tax_id": OTHER, "name": "NOU VENIT SRL",
                                          "address": "", "trade_register_no": ""}
    # a registered company keeps its own data; its registration later replaces the discovered name
    r = await send(env, item(CLIENT_A))
    assert r.json()["results"][0]["invitation"]["client_name"] == "Firma X SRL"
    await env.feed(CompanyUpdated(cif=OTHER, name="Nou Venit SRL", address="Str. Nouă 2, Cluj"))
    p = await env.client.get("/api/invitations/preview", params={"token": await token_of(env, inv["id"])})
    assert p.json()["client_company"]["name"] == "Nou Venit SRL"


async def test_the_firms_list_pages_with_an_opaque_cursor(env: Env):
    await setup_firm(env)
    assert (await send(env, item(CLIENT_A), item(CLIENT_B))).status_code == 201
    h, url = env.h("firm-user"), "/api/invitations"
    first = (await env.client.get(url, params={"firm_cif": FIRM, "limit": 1}, headers=h)).json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = (await env.client.get(url, params={"firm_cif": FIRM, "limit": 1, "cursor": first["next_cursor"]},
                                   headers=h)).json()
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    # both were sent at the same instant: the id breaks the tie, so no invitation is skipped or repeated
    assert {i["client_cif"] for i in first["items"] + second["items"]} == {CLIENT_A, CLIENT_B}
    # the status filter counts an invitation past its expiry as expired before the job marks it
    env.clock.advance(days=16)
    expired = (await env.client.get(url, params={"firm_cif": FIRM, "status": "expired"}, headers=h)).json()
    assert len(expired["items"]) == 2 and expired["next_cursor"] is None
    pending = (await env.client.get(url, params={"firm_cif": FIRM, "status": "pending"}, headers=h)).json()
    assert pending["items"] == []
    r = await env.client.get(url, params={"firm_cif": FIRM, "cursor": "not-a-cursor"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_cursor"
