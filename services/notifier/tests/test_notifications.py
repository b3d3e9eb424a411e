"""Every notification kind arrives once in the inbox and once by e-mail (where enabled), in Romanian; a
redelivered event never sends twice; SMTP down for a while -> everything delivered afterwards, once."""
from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
from ntfkit import Stack
from spvhub_common.events.auth import ReauthorizationRequired, TokenExpiring, TokenRefreshed, UserRegistered
from spvhub_common.events.efactura import InvoiceDownloaded, InvoiceErrorReceived, MessageExpiring
from spvhub_common.events.etransport import TransportAssigned, UitExpiring
from spvhub_common.events.invitations import (
    InvitationAccepted,
    InvitationClaimed,
    InvitationDeclined,
    InvitationExpired,
)
from spvhub_common.events.portfolio import AccessChanged, AccessLost, CompanyRegistered
from spvhub_notifier import handlers
from spvhub_notifier.adapters.orm import delivery_log, email_outbox
from sqlalchemy import func, select

CIF, FIRM = "22222220", "11111110"
T = datetime(2025, 4, 1, 10, 0, tzinfo=UTC)
DIACRITICS = set("ăâîșțĂÂÎȘȚ")


def company_events() -> list:
    return [
        TokenExpiring(connection_id="c1", company_cif=CIF, user_id="ana", must_act_by=T, days_left=30),
        TokenExpiring(connection_id="c1", company_cif=CIF, user_id="ana", must_act_by=T, days_left=14),
        TokenExpiring(connection_id="c1", company_cif=CIF, user_id="ana", must_act_by=T, days_left=7),
        TokenExpiring(connection_id="c1", company_cif=CIF, user_id="ana", must_act_by=T, days_left=1),
        ReauthorizationRequired(connection_id="c1", company_cif=CIF, user_id="ana", reason="certificate_renewed",
                                message="Certificatul cu seria 1A2B a fost înlocuit."),
        TokenRefreshed(connection_id="c1", company_cif=CIF, access_expires_at=T, refresh_expires_at=T,
                       after_warning=True),
        InvoiceErrorReceived(cif=CIF, message_id="3001", upload_index="5001",
                             errors=["E: BR-RO-010 lipsește codul de identificare"]),
        # the error report of a submission made through spvhub: its rejection notice tells the sender (no 2nd notice)
        InvoiceErrorReceived(cif=CIF, message_id="3003", upload_index="5003", submission_id="sub-1",
                             errors=["E: BR-RO-110 județul"]),
        MessageExpiring(cif=CIF, message_id="3002", purge_at=T),
        TransportAssigned(carrier_cif=CIF, uit="UIT1234567890ABC", declarant_cif="33333330", vehicle="B-123-ABC",
                          transport_date=date(2025, 3, 2), uit_expires_at=T, route_start="București",
                          route_end="Iași"),
        UitExpiring(carrier_cif=CIF, uit="UIT1234567890ABC", uit_expires_at=T),
        AccessLost(cif=CIF, connection_id="c1", reason="rights_withdrawn", notify_user_ids=["ana", "dan"]),
    ]


def firm_events() -> list:
    base = {"firm_cif": FIRM, "client_cif": CIF, "firm_name": "Contabil Expert SRL", "client_name": "Firma X SRL"}
    return [InvitationAccepted(invitation_id="i1", user_id="ana", **base),
            InvitationDeclined(invitation_id="i2", user_id="ana", **base),
            InvitationExpired(invitation_id="i3", expired_at=T, **base)]


def invoices(n: int) -> list:
    return [InvoiceDownloaded(cif=CIF, message_id=f"40{i}", direction="received" if i % 3 else "sent",
                              document_type="invoice", number=f"FX-{i}", partner_name="Furnizor Ștefan SRL",
                              total_amount=Decimal("119.00"), currency="RON", issue_date=date(2025, 3, 1))
            for i in range(n)]


async def people(st: Stack) -> None:
    for ev in (CompanyRegistered(cif=CIF, name="Firma X SRL"), CompanyRegistered(cif=FIRM, name="Contabil Expert SRL"),
               UserRegistered(user_id="ana", email="ana@firmax.ro", name="Ana Popescu"),
               UserRegistered(user_id="dan", email="dan@firmax.ro", name="Dan Ionescu", locale="en"),
               UserRegistered(user_id="ion", email="ion@contabilexpert.ro", name="Ion Contabilu")):
        await st.feed(ev, consumer="notifier.read-models")
    for user, cif in (("ana", CIF), ("dan", CIF), ("ion", FIRM)):
        await st.feed(AccessChanged(cif=cif, user_id=user, role="owner", granted=True),
                      consumer="notifier.access-read-model")


async def test_each_kind_once_in_inbox_and_by_email_in_romanian(stack: Stack):
    st = stack
    await people(st)
    # dan's profile language is English (from his registration); he wants no e-mail for transports
    r = await st.notifier.put("/api/notifier/preferences", headers=st.h("dan"),
                              json={"email": {"transport_assigned": False}})
    assert r.status_code == 200, r.text
    envs = []
    for ev in company_events() + firm_events() + invoices(12):
        envs.append(await st.feed(ev))
    # routine refresh (no warning before) is silent
    await st.feed(TokenRefreshed(connection_id="c1", company_cif=CIF, access_expires_at=T, refresh_expires_at=T))
    await st.feed(InvitationClaimed(invitation_id="i9", firm_cif=FIRM, client_cif=CIF, user_id="ana",
                                    firm_name="Contabil Expert SRL", client_name="Firma X SRL"))
    assert await handlers.run_digests(st.deps) == 1
    assert await handlers.run_digests(st.deps) == 0
    # redelivery, and a replay past the inbox: nothing new anywhere
    for env in envs:
        await st.feed(env)
        await st.feed(env, skip_inbox=True)
    await st.send_all()

    kinds_company = ["token_expiring"] * 4 + ["reauthorization_required", "authorization_renewed", "invoice_error",
                                              "message_expiring", "transport_assigned", "uit_expiring",
                                              "access_lost", "invoice_digest"]
    ana = [r["kind"] for r in await st.inbox_rows("ana")]
    assert sorted(ana) == sorted(kinds_company + ["invitation_received"])
    ion = [r["kind"] for r in await st.inbox_rows("ion")]
    assert sorted(ion) == ["invitation_accepted", "invitation_declined", "invitation_expired"]

    ana_mail = st.mails("ana@firmax.ro")
    assert len(ana_mail) == len(ana)  # one e-mail per inbox item
    for m in ana_mail + st.mails("ion@contabilexpert.ro"):
        assert DIACRITICS & set(m["subject"] + m["text"]), m["subject"]
        assert "Bună ziua" in m["text"]
    subjects = {m["subject"] for m in ana_mail}
    assert "Autorizarea SPV pentru Firma X SRL expiră în 1 zi" in subjects
    assert "Autorizarea SPV pentru Firma X SRL expiră în 30 de zile" in subjects
    assert "Autorizarea SPV pentru Firma X SRL expiră în 14 zile" in subjects
    assert "12 facturi noi în SPV pentru Firma X SRL" in subjects
    reauth = next(m for m in ana_mail if "reautorizarea" in m["subject"])
    assert "certificatul calificat folosit la autorizare a fost reînnoit" in reauth["text"]
    assert "Ce aveți de făcut" in reauth["text"]
    digest = next(m for m in ana_mail if "facturi noi" in m["subject"])
    assert "Furnizor Ștefan SRL" in digest["text"] and "și încă 2" in digest["text"]

    dan_mail = st.mails("dan@firmax.ro")
    # no transport e-mail; as an owner of the client company he also hears of the invitation ana claimed (an owner
    # or administrator answers it)
    assert len(dan_mail) == len(kinds_company) - 1 + 1
    assert "New transport" not in " ".join(m["subject"] for m in dan_mail)
    assert any(m["subject"] == "12 new invoices in SPV for Firma X SRL" for m in dan_mail)
    dan_inbox = (await st.notifier.get("/api/notifier/notifications", headers=st.h("dan"))).json()
    assert dan_inbox["locale"] == "en" and len(dan_inbox["items"]) == len(kinds_company) + 1

    ion_mail = sorted(m["subject"] for m in st.mails("ion@contabilexpert.ro"))
    assert ion_mail == ["Firma X SRL a acceptat colaborarea", "Firma X SRL a refuzat colaborarea",
                        "Invitația pentru Firma X SRL a expirat"]
    # every e-mail has exactly one Message-ID, none repeated
    ids = [m["message_id"] for m in st.mail.store.list()]
    assert len(ids) == len(set(ids))


async def test_smtp_unavailable_then_everything_delivered_once(stack: Stack):
    st = stack
    await people(st)
    st.mail.set_faults(refuse=True)
    envs = [await st.feed(ev) for ev in company_events()[:5]]
    for _ in range(4):  # several attempts while SMTP refuses connections
        await handlers.send_due_emails(st.deps)
        import asyncio
        await asyncio.sleep(0.25)
    assert st.mails() == []
    async with st.ntf.sessions() as s:
        retries = (await s.execute(select(func.count()).select_from(delivery_log)
                                   .where(delivery_log.c.outcome == "retry"))).scalar()
        assert retries >= 10  # 5 events x 2 users, each tried at least once and logged
        statuses = set((await s.execute(select(email_outbox.c.status))).scalars())
        assert statuses == {"pending"}
    # the server answers but refuses deliveries (421) for a while
    async with httpx.AsyncClient() as c:  # through the HTTP switch, as an operator would
        await c.post(f"{st.mail.http_url}/fault", json={"refuse": True, "mode": "reply"})
    await handlers.send_due_emails(st.deps)
    assert st.mails() == []
    st.mail.set_faults(refuse=False, fail_next=2)
    for env in envs:  # Kafka redelivers meanwhile
        await st.feed(env)
    await st.send_all(rounds=60)
    mails = st.mails()
    assert len(mails) == 10
    assert len({(m["to"][0], m["subject"]) for m in mails}) == 10
    async with st.ntf.sessions() as s:
        assert set((await s.execute(select(email_outbox.c.status))).scalars()) == {"sent"}
        outcomes = (await s.execute(select(delivery_log.c.outcome, func.count()).group_by(delivery_log.c.outcome)
                                    )).all()
    assert dict(outcomes)["sent"] == 10
    sent_events = [d for t, d in await st.published() if t == "notifier.notification-sent" and d["channel"] == "email"]
    assert len(sent_events) == 10


async def test_inbox_api_and_preferences(stack: Stack):
    st = stack
    await people(st)
    for ev in company_events()[:4]:
        await st.feed(ev)
    h = st.h("ana")
    inbox = (await st.notifier.get("/api/notifier/notifications", headers=h, params={"limit": 3})).json()
    assert inbox["unread"] == 4 and len(inbox["items"]) == 3 and inbox["next_cursor"]
    assert [i["data"]["days_left"] for i in inbox["items"]] == [1, 7, 14]  # newest first
    page2 = (await st.notifier.get("/api/notifier/notifications", headers=h,
                                   params={"limit": 3, "before": inbox["next_cursor"]})).json()
    assert [i["data"]["days_left"] for i in page2["items"]] == [30] and page2["next_cursor"] is None
    first = inbox["items"][0]
    assert first["title"] == "Autorizarea SPV expiră în 1 zi"
    assert first["url"].endswith(f"/companies/{CIF}/authorization")
    r = await st.notifier.post(f"/api/notifier/notifications/{first['id']}/read", headers=h)
    assert r.status_code == 200 and r.json()["read"] and r.json()["unread"] == 3
    assert (await st.notifier.post(f"/api/notifier/notifications/{first['id']}/read",
                                   headers=st.h("dan"))).status_code == 404
    assert (await st.notifier.get("/api/notifier/notifications/unread-count", headers=h)).json() == {"unread": 3}
    unread = (await st.notifier.get("/api/notifier/notifications", headers=h, params={"unread_only": True})).json()
    assert len(unread["items"]) == 3
    assert (await st.notifier.post("/api/notifier/notifications/read-all", headers=h)).json()["marked"] == 3
    assert (await st.notifier.get("/api/notifier/notifications/unread-count", headers=h)).json() == {"unread": 0}
    assert (await st.notifier.get("/api/notifier/notifications", headers=st.h("nobody"))).json()["items"] == []
    assert (await st.notifier.get("/api/notifier/notifications")).status_code == 401

    prefs = (await st.notifier.get("/api/notifier/preferences", headers=h)).json()
    assert prefs["locale"] == "ro" and prefs["email"]["invoice_digest"] is True and "locale_chosen" not in prefs
    assert prefs["companies"] == [{"cif": CIF, "name": "Firma X SRL", "invoice_digest": True}]
    bad = await st.notifier.put("/api/notifier/preferences", headers=h, json={"email": {"nope": False}})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "unknown_notification_kind"
    bad = await st.notifier.put("/api/notifier/preferences", headers=h, json={
        "email": {"invoice_digest": False}, "companies": [{"cif": FIRM, "invoice_digest": False}]})
    assert bad.status_code == 403
    # nothing half-written
    assert (await st.notifier.get("/api/notifier/preferences", headers=h)).json() == prefs
    ok = await st.notifier.put("/api/notifier/preferences", headers=h, json={
        "companies": [{"cif": CIF, "invoice_digest": False}]})
    assert ok.status_code == 200 and ok.json()["companies"][0]["invoice_digest"] is False
    assert ok.json()["locale"] == "ro"
    inbox = (await st.notifier.get("/api/notifier/notifications", headers=h)).json()
    assert inbox["items"][0]["title"] == "Autorizarea SPV expiră în 1 zi"
    # digest opt-out for the company: ana gets no digest, dan does
    for ev in invoices(2):
        await st.feed(ev)
    await handlers.run_digests(st.deps)
    assert [r["kind"] for r in await st.inbox_rows("ana")].count("invoice_digest") == 0
    assert [r["kind"] for r in await st.inbox_rows("dan")].count("invoice_digest") == 1


async def test_inbox_pages_with_an_opaque_cursor_and_still_takes_the_older_raw_form(stack: Stack):
    st = stack
    await people(st)
    for ev in company_events()[:4]:
        await st.feed(ev)
    h = st.h("ana")
    url = "/api/notifier/notifications"
    first = (await st.notifier.get(url, headers=h, params={"limit": 2})).json()
    cursor = first["next_cursor"]
    assert cursor and "|" not in cursor and cursor.replace("-", "").replace("_", "").isalnum()  # no URL-encoding
    page2 = (await st.notifier.get(url, headers=h, params={"limit": 2, "cursor": cursor})).json()
    assert [i["data"]["days_left"] for i in first["items"] + page2["items"]] == [1, 7, 14, 30]
    assert page2["next_cursor"] is None
    # the raw `timestamp|id` form earlier releases returned, after the first page's last item
    last = first["items"][-1]
    old = (await st.notifier.get(url, headers=h, params={"limit": 2, "before": f"{last['created_at']}|{last['id']}"})
           ).json()
    assert [i["id"] for i in old["items"]] == [i["id"] for i in page2["items"]]
    for bad in ("not a cursor", "W10", "WyJ4IiwieSJd", "2025-13-01T00:00:00|x"):
        r = await st.notifier.get(url, headers=h, params={"cursor": bad})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_cursor", (bad, r.text)


async def test_a_sender_whose_lease_was_taken_over_records_nothing(stack: Stack):
    """Sender A's lease runs out and sender B takes the e-mail over: the row is `sending` again, but A's late
    record (a retry here) must not put it back to pending under B, nor log a delivery attempt that is not A's."""
    from spvhub_notifier.adapters import repository
    from sqlalchemy import update

    st = stack
    await people(st)
    await st.feed(company_events()[0])
    async with st.ntf.uow() as uow:
        first = (await repository.lease_due_emails(uow.session, 1, 60))[0]
        await uow.commit()
    async with st.ntf.uow() as uow:  # A's lease runs out
        await uow.session.execute(update(email_outbox).where(email_outbox.c.id == first.id)
                                  .values(lease_until=func.now() - func.make_interval(0, 0, 0, 0, 0, 0, 1)))
        await uow.commit()
    async with st.ntf.uow() as uow:
        second = [e for e in await repository.lease_due_emails(uow.session, 10, 60) if e.id == first.id][0]
        await uow.commit()
    assert second.attempts == first.attempts + 1
    async with st.ntf.uow() as uow:
        assert not await repository.record_attempt(uow.session, first, "retry", "late answer of A", retry_in=0)
        await uow.commit()
    async with st.ntf.sessions() as s:
        row = (await s.execute(select(email_outbox.c.status, email_outbox.c.attempts)
                               .where(email_outbox.c.id == first.id))).one()
        logged = (await s.execute(select(func.count()).select_from(delivery_log)
                                  .where(delivery_log.c.email_id == first.id))).scalar()
    assert (row.status, row.attempts, logged) == ("sending", second.attempts, 0)
    async with st.ntf.uow() as uow:  # B's own record still lands
        assert await repository.record_attempt(uow.session, second, "sent", None)
        await uow.commit()
    async with st.ntf.sessions() as s:
        assert (await s.execute(select(email_outbox.c.status).where(email_outbox.c.id == first.id))).scalar() == "sent"
