"""A collaboration changes only with the client's consent: only a verified owner or administrator of the client
company answers an invitation (whoever claimed the link), a decline is final for that invitation, and only the
firm's own verified owners and administrators invite, re-send and withdraw. Every refusal leaves nothing behind."""
from __future__ import annotations

import asyncio

from invkit import CLIENT_A, FIRM, Env, setup_firm
from spvhub_common.events.portfolio import AccessChanged
from spvhub_invitations.adapters.orm import invitations
from sqlalchemy import select
from test_invitations import item, send, token_of

EN = {"Accept-Language": "en"}


async def _row(env: Env, invitation_id: str) -> dict:  # type: ignore[type-arg]
    async with env.runtime.sessions() as s:
        return dict((await s.execute(select(invitations).where(invitations.c.id == invitation_id))).mappings().one())


async def _grant(env: Env, user: str, cif: str, role: str = "owner", *, verified: bool = True,
                 via_firm_cif: str | None = None) -> None:
    await env.feed(AccessChanged(cif=cif, user_id=user, role=role, granted=True, verified=verified,
                                 via_firm_cif=via_firm_cif))


async def _claimed(env: Env, claimer: str) -> dict:  # type: ignore[type-arg]
    inv = (await send(env, item(CLIENT_A))).json()["results"][0]["invitation"]
    c = await env.client.post("/api/invitations/claim", json={"token": await token_of(env, inv["id"])},
                              headers=env.h(claimer))
    assert c.status_code == 200, c.text
    return inv


async def test_a_decline_is_final_for_the_invitation(env: Env):
    """The re-sent-invitation takeover: the client's owner declines; the firm cannot send the same invitation
    again (to another address) to get a second answer."""
    await setup_firm(env)
    await _grant(env, "real-owner", CLIENT_A)
    inv = await _claimed(env, "real-owner")
    d = await env.client.post(f"/api/invitations/{inv['id']}/decline", headers=env.h("real-owner"))
    assert d.status_code == 200 and d.json()["status"] == "declined"
    before_row, before_events = await _row(env, inv["id"]), await env.outbox()

    r = await env.client.post(f"/api/invitations/{inv['id']}/resend", headers=env.h("firm-user"),
                              json={"email": "alta.adresa@example.ro"})
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["code"] == "invitation_declined" and "a refuzat această invitație" in err["message"]
    r = await env.client.post(f"/api/invitations/{inv['id']}/resend", headers={**env.h("firm-user"), **EN})
    assert r.status_code == 409 and "declined this invitation" in r.json()["error"]["message"]
    # nothing changed, nothing to send: no new link, no invitation-sent for the notifier to e-mail
    assert await _row(env, inv["id"]) == before_row
    assert await env.outbox() == before_events
    assert (await env.client.get(f"/internal/invitations/{inv['id']}/link",
                                 headers={"X-Service-Token": "dev-service-token"})).status_code == 410
    # a decline stays a decline
    a = await env.client.post(f"/api/invitations/{inv['id']}/accept", headers=env.h("real-owner"))
    assert a.status_code == 409 and a.json()["error"]["code"] == "invitation_already_answered"


async def test_only_a_verified_manager_of_the_client_answers(env: Env):
    await setup_firm(env)
    # the company already has a verified owner: the claim made the claimer a join request (unverified)
    await _grant(env, "real-owner", CLIENT_A)
    inv = await _claimed(env, "claimer")
    await _grant(env, "claimer", CLIENT_A, role="member", verified=False)
    await _grant(env, "employee", CLIENT_A, role="member")
    await _grant(env, "firm-user", CLIENT_A, role="accountant", via_firm_cif=FIRM)
    before = await env.outbox()
    for user, code in (("claimer", "company_not_verified"), ("stranger", "no_access_to_company"),
                       ("employee", "insufficient_role"), ("firm-user", "no_access_to_company")):
        for answer in ("accept", "decline"):
            r = await env.client.post(f"/api/invitations/{inv['id']}/{answer}", headers=env.h(user))
            assert r.status_code == 403 and r.json()["error"]["code"] == code, (user, answer, r.text)
    r = await env.client.post(f"/api/invitations/{inv['id']}/accept", headers=env.h("claimer"))
    assert "nu este încă verificată" in r.json()["error"]["message"]
    assert (await _row(env, inv["id"]))["status"] == "claimed"
    assert await env.outbox() == before

    # the owner, who never opened the link, sees the invitation and answers for the company
    assert (await env.client.get(f"/api/invitations/{inv['id']}", headers=env.h("real-owner"))).status_code == 200
    mine = (await env.client.get("/api/invitations/received", headers=env.h("real-owner"))).json()
    assert [(i["id"], i["status"]) for i in mine] == [(inv["id"], "claimed")]
    assert (await env.client.get("/api/invitations/received", headers=env.h("employee"))).json() == []
    assert (await env.client.get(f"/api/invitations/{inv['id']}", headers=env.h("employee"))).status_code == 403
    a = await env.client.post(f"/api/invitations/{inv['id']}/accept", headers=env.h("real-owner"))
    assert a.status_code == 200 and a.json()["status"] == "accepted"
    (topic, data), = (await env.outbox())[len(before):]
    assert topic == "invitations.invitation-accepted" and data["user_id"] == "real-owner"


async def test_the_answer_waits_for_the_claimers_verification(env: Env):
    """The claimer's membership is decided by portfolio and reaches this service through Kafka a moment after
    the claim: an answer given at once waits for it instead of failing."""
    await setup_firm(env)
    inv = await _claimed(env, "client-user")

    async def portfolio_verifies_later() -> None:
        await asyncio.sleep(0.1)
        await _grant(env, "client-user", CLIENT_A, verified=False)
        await asyncio.sleep(0.05)
        await _grant(env, "client-user", CLIENT_A)
    task = asyncio.create_task(portfolio_verifies_later())
    a = await env.client.post(f"/api/invitations/{inv['id']}/accept", headers=env.h("client-user"))
    await task
    assert a.status_code == 200 and a.json()["status"] == "accepted"


async def test_only_the_firms_verified_managers_invite_resend_and_revoke(env: Env):
    await setup_firm(env)
    inv = (await send(env, item(CLIENT_A))).json()["results"][0]["invitation"]
    await _grant(env, "firm-member", FIRM, role="member")
    await _grant(env, "firm-newcomer", FIRM, role="owner", verified=False)
    row, events = await _row(env, inv["id"]), await env.outbox()
    for user, code in (("firm-member", "insufficient_role"), ("firm-newcomer", "company_not_verified"),
                       ("stranger", "no_access_to_company")):
        r = await send(env, item("33333338"), user=user)
        assert r.status_code == 403 and r.json()["error"]["code"] == code, (user, r.text)
        r = await env.client.post(f"/api/invitations/{inv['id']}/resend", headers=env.h(user))
        assert r.status_code == 403 and r.json()["error"]["code"] == code, (user, r.text)
        r = await env.client.post(f"/api/invitations/{inv['id']}/revoke", headers=env.h(user))
        assert r.status_code == 403 and r.json()["error"]["code"] == code, (user, r.text)
    assert await _row(env, inv["id"]) == row and await env.outbox() == events
    # a verified member still reads the firm's invitations
    lst = await env.client.get("/api/invitations", params={"firm_cif": FIRM}, headers=env.h("firm-member"))
    assert lst.status_code == 200 and [i["id"] for i in lst.json()["items"]] == [inv["id"]]
    # an administrator of the firm may
    await _grant(env, "firm-admin", FIRM, role="admin")
    r = await env.client.post(f"/api/invitations/{inv['id']}/resend", headers=env.h("firm-admin"))
    assert r.status_code == 200 and r.json()["send_count"] == 2
