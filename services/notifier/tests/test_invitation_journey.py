"""The invitation journey across invitations and notifier, in-process against the real PostgreSQL and a real
SMTP server: discovery -> invitation e-mail (read back from the capture) -> link -> claim -> inbox item ->
accept -> the firm told in the inbox and by e-mail. Also: 16 days later the link is refused; used is refused."""
from __future__ import annotations

import re

from ntfkit import Stack
from spvhub_common.events.auth import UserRegistered
from spvhub_common.events.portfolio import AccessChanged, CompanyRegistered, RightsDiscovered

FIRM, CLIENT = "11111110", "22222229"
REP = "ana.popescu@firmax.ro"


async def setup(st: Stack) -> None:
    for ev in (CompanyRegistered(cif=FIRM, name="Contabil Expert SRL", provides_accounting_services=True),
               CompanyRegistered(cif=CLIENT, name="Firma X SRL", address="Str. Morii 3, Cluj-Napoca"),
               AccessChanged(cif=FIRM, user_id="firm-user", role="owner", granted=True),
               RightsDiscovered(connection_id="conn-1", holder_cif=FIRM, cifs=[FIRM, CLIENT], gained=[CLIENT])):
        await st.feed_invitations(ev)
    for ev in (CompanyRegistered(cif=FIRM, name="Contabil Expert SRL"),
               CompanyRegistered(cif=CLIENT, name="Firma X SRL"),
               AccessChanged(cif=FIRM, user_id="firm-user", role="owner", granted=True),
               UserRegistered(user_id="firm-user", email="office@contabilexpert.ro", name="Ion Contabilu")):
        await st.feed(ev)


async def invite(st: Stack) -> str:
    r = await st.invitations.post("/api/invitations", headers=st.h("firm-user"), json={
        "firm_cif": FIRM, "invitations": [{"client_cif": CLIENT, "name": "Ana Popescu", "email": REP,
                                           "phone": "0722123456"}]})
    assert r.status_code == 201, r.text
    return r.json()["results"][0]["invitation"]["id"]


def link_token(mail: dict) -> str:
    m = re.search(r"https://spv\.example\.ro/join\?invitation=([A-Za-z0-9_-]+)", mail["text"])
    assert m, mail["text"]
    assert m.group(0) in mail["html"]
    return m.group(1)


async def test_from_discovery_to_accepted(stack: Stack):
    st = stack
    await setup(st)
    await invite(st)
    await st.relay_invitations()
    await st.send_all()

    mails = st.mails(REP)
    assert len(mails) == 1
    mail = mails[0]
    assert mail["subject"] == "Contabil Expert SRL vă invită să colaborați pentru Firma X SRL"
    assert "Creați-vă contul" in mail["text"] and "Ana Popescu" in mail["text"]
    token = link_token(mail)
    # the token never went through Kafka and is stored nowhere in the notifier
    for _topic, data in await st.published():
        assert token not in str(data)
    async with st.ntf.sessions() as s:
        from sqlalchemy import text
        dump = str((await s.execute(text("SELECT * FROM email_outbox"))).all())
        dump += str((await s.execute(text("SELECT * FROM delivery_log"))).all())
    assert token not in dump

    # the sign-up page, then the new account claims (auth would publish user-registered)
    p = await st.invitations.get("/api/invitations/preview", params={"token": token})
    assert p.json()["firm"]["name"] == "Contabil Expert SRL" and p.json()["client_company"]["cif"] == CLIENT
    await st.feed(UserRegistered(user_id="client-user", email=REP, name="Ana Popescu"),
                  consumer="notifier.read-models")
    c = await st.invitations.post("/api/invitations/claim", json={"token": token}, headers=st.h("client-user"))
    assert c.status_code == 200, c.text
    used = await st.invitations.post("/api/invitations/claim", json={"token": token}, headers=st.h("someone"))
    assert used.status_code == 409 and used.json()["error"]["code"] == "invitation_already_used"
    await st.relay_invitations()
    # portfolio: the client had no verified owner and the firm's certificate covers it, so the claimer is one now
    await st.feed_invitations(AccessChanged(cif=CLIENT, user_id="client-user", role="owner", granted=True))

    # the bell: one actionable item, in Romanian
    inbox = (await st.notifier.get("/api/notifier/notifications", headers=st.h("client-user"))).json()
    assert inbox["unread"] == 1
    item = inbox["items"][0]
    assert item["title"] == "Contabil Expert SRL invită Firma X SRL să colaboreze"
    assert [a["action"] for a in item["actions"]] == ["accept", "decline"]
    accept = next(a for a in item["actions"] if a["action"] == "accept")
    r = await st.invitations.post(accept["href"], headers=st.h("client-user"))
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    await st.relay_invitations()
    await st.send_all()

    item = (await st.notifier.get("/api/notifier/notifications", headers=st.h("client-user"))).json()["items"][0]
    assert item["action_state"] == "accepted" and item["actions"] == [] and item["read"]
    firm_inbox = (await st.notifier.get("/api/notifier/notifications", headers=st.h("firm-user"))).json()
    assert [i["kind"] for i in firm_inbox["items"]] == ["invitation_accepted"]
    assert firm_inbox["items"][0]["title"] == "Firma X SRL a acceptat colaborarea"
    firm_mail = st.mails("office@contabilexpert.ro")
    assert [m["subject"] for m in firm_mail] == ["Firma X SRL a acceptat colaborarea"]
    client_mail = st.mails(REP)
    assert len(client_mail) == 2  # the invitation, then "you have an invitation to answer"
    sent = [d for t, d in await st.published() if t == "notifier.notification-sent"]
    assert sorted((d["kind"], d["channel"]) for d in sent) == sorted([
        ("invitation", "email"), ("invitation_received", "inbox"), ("invitation_received", "email"),
        ("invitation_accepted", "inbox"), ("invitation_accepted", "email")])


async def test_expired_after_16_days_and_firm_told_once(stack: Stack):
    st = stack
    await setup(st)
    await invite(st)
    await st.relay_invitations()
    await st.send_all()
    token = link_token(st.mails(REP)[0])
    st.clock.advance(days=16)
    r = await st.invitations.post("/api/invitations/claim", json={"token": token}, headers=st.h("client-user"))
    assert r.status_code == 410
    assert r.json()["error"]["code"] == "invitation_expired"
    assert "expired" in r.json()["error"]["message"]
    from spvhub_invitations import handlers as inv_handlers
    await inv_handlers.expire_due(st.inv_app.state.deps)
    envs = await st.relay_invitations()
    for env in envs:  # a redelivered event changes nothing
        await st.feed(env)
        await st.feed(env, skip_inbox=True)
    await st.send_all()
    firm = (await st.notifier.get("/api/notifier/notifications", headers=st.h("firm-user"))).json()
    assert [i["kind"] for i in firm["items"]] == ["invitation_expired"]
    assert firm["items"][0]["title"] == "Invitația pentru Firma X SRL a expirat"
    assert [m["subject"] for m in st.mails("office@contabilexpert.ro")] == ["Invitația pentru Firma X SRL a expirat"]


async def test_invitation_email_not_sent_once_revoked(stack: Stack):
    st = stack
    await setup(st)
    inv_id = await invite(st)
    await st.relay_invitations()
    r = await st.invitations.post(f"/api/invitations/{inv_id}/revoke", headers=st.h("firm-user"))
    assert r.status_code == 200
    await st.send_all()
    assert st.mails(REP) == []
    from spvhub_notifier.adapters.orm import email_outbox
    from sqlalchemy import select
    async with st.ntf.sessions() as s:
        assert (await s.execute(select(email_outbox.c.status))).scalars().all() == ["cancelled"]


async def test_declined_invitation_is_not_sent_again(stack: Stack):
    """The re-sent-invitation takeover: the client's owner declines; the firm re-sends to an address of its choosing.
    The re-send is refused and nothing reaches the SMTP capture; a brand-new invitation claimed by a stranger does
    not let the stranger answer for the company."""
    st = stack
    await setup(st)
    inv_id = await invite(st)
    await st.relay_invitations()
    await st.send_all()
    token = link_token(st.mails(REP)[0])
    assert (await st.invitations.post("/api/invitations/claim", json={"token": token},
                                      headers=st.h("client-user"))).status_code == 200
    owner = AccessChanged(cif=CLIENT, user_id="client-user", role="owner", granted=True)
    await st.feed_invitations(owner)
    await st.feed(owner, consumer="notifier.access-read-model")
    d = await st.invitations.post(f"/api/invitations/{inv_id}/decline", headers=st.h("client-user"))
    assert d.status_code == 200 and d.json()["status"] == "declined"
    await st.relay_invitations()
    await st.send_all()
    before = len(st.mail.store.list())

    r = await st.invitations.post(f"/api/invitations/{inv_id}/resend", headers=st.h("firm-user"),
                                  json={"email": "complice@example.com"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "invitation_declined"
    assert r.json()["error"]["message"].startswith("Compania client a refuzat această invitație")
    assert await st.relay_invitations() == []
    await st.send_all()
    assert st.mails("complice@example.com") == [] and len(st.mail.store.list()) == before

    # a new invitation to the accomplice: the claim is only a join request (the company has a verified owner)
    r = await st.invitations.post("/api/invitations", headers=st.h("firm-user"), json={
        "firm_cif": FIRM, "invitations": [{"client_cif": CLIENT, "name": "Complice", "email": "complice@example.com",
                                           "phone": "0722123456"}]})
    assert r.status_code == 201, r.text
    new_id = r.json()["results"][0]["invitation"]["id"]
    await st.relay_invitations()
    await st.send_all()
    token = link_token(st.mails("complice@example.com")[0])
    assert (await st.invitations.post("/api/invitations/claim", json={"token": token},
                                      headers=st.h("complice"))).status_code == 200
    await st.feed_invitations(AccessChanged(cif=CLIENT, user_id="complice", role="member", granted=True,
                                            verified=False))
    r = await st.invitations.post(f"/api/invitations/{new_id}/accept", headers=st.h("complice"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "company_not_verified"
    await st.relay_invitations()
    # the company's owner hears of the claimed invitation and is the one who may answer it
    items = (await st.notifier.get("/api/notifier/notifications", headers=st.h("client-user"))).json()["items"]
    pending = [i for i in items if i["kind"] == "invitation_received" and i["data"]["invitation_id"] == new_id]
    assert len(pending) == 1 and [a["action"] for a in pending[0]["actions"]] == ["accept", "decline"]
    assert (await st.invitations.get(f"/api/invitations/{new_id}", headers=st.h("client-user"))).json()[
        "status"] == "claimed"


async def test_a_natural_person_invited_by_cnp_is_named_masked_in_the_email(stack: Stack):
    """The firm types the person's CNP: the e-mail (read back from the SMTP capture) names the client by the CNP
    masked, and neither the e-mail, the notifier's tables nor any published event holds the clear CNP."""
    from spvhub_common.ids import cnp_control_digit, mask_cnp
    from spvhub_common.pii import DEV_PII_SECRET, PersonIds
    st = stack
    ids = PersonIds(DEV_PII_SECRET)
    cnp = "185031512456" + str(cnp_control_digit("185031512456"))
    key = ids.key_of(cnp)
    for ev in (CompanyRegistered(cif=FIRM, name="Contabil Expert SRL", provides_accounting_services=True),
               CompanyRegistered(cif=key, name="Persoană fizică", cnp_sealed=ids.seal(cnp)),
               AccessChanged(cif=FIRM, user_id="firm-user", role="owner", granted=True),
               RightsDiscovered(connection_id="conn-1", holder_cif=FIRM, cifs=[FIRM, key], gained=[key])):
        await st.feed_invitations(ev)
    for ev in (CompanyRegistered(cif=FIRM, name="Contabil Expert SRL"),
               AccessChanged(cif=FIRM, user_id="firm-user", role="owner", granted=True)):
        await st.feed(ev)
    r = await st.invitations.post("/api/invitations", headers=st.h("firm-user"), json={
        "firm_cif": FIRM, "invitations": [{"client_cif": cnp, "name": "Radu Stoica", "email": REP,
                                           "phone": "0722123456"}]})
    assert r.status_code == 201, r.text
    await st.relay_invitations()
    await st.send_all()
    [mail] = st.mails(REP)
    assert f"(CNP {mask_cnp(cnp)})" in mail["text"] and f"CNP {mask_cnp(cnp)}" in mail["html"]
    assert key not in mail["text"]
    async with st.ntf.sessions() as s:
        from sqlalchemy import text
        dump = str((await s.execute(text("SELECT * FROM email_outbox"))).all())
        dump += str((await s.execute(text("SELECT * FROM delivery_log"))).all())
    published = str(await st.published())
    for where in (mail["text"], mail["html"], mail["subject"], dump, published):
        assert cnp not in where and cnp[1:7] not in where
