"""The filing clock beyond submissions, against the real PostgreSQL/Kafka/MinIO and the in-process emulator:
a draft (saved, not filed) carries its legal deadline from its issue date, is listed beside the submissions (per
company and across an accounting firm's clients, soonest first), is warned about once, and is filed with one call
through the normal submission path; only those who may file for the company touch drafts (refusals write
nothing). A sent invoice the inbox finds, filed outside spvhub after its deadline (its message's data_creare), is
marked late on its invoice row and `efactura.filed-late` is published once for it; one filed on time is not."""
from __future__ import annotations

from datetime import date, datetime

import httpx
from efactura_kit import Harness, company_cifs, efactura_settings, new_emulator
from spvhub_common.clock import ManualClock
from spvhub_common.ro_calendar import RO_TZ
from spvhub_devtools.testtokens import TokenMinter
from spvhub_efactura.adapters.orm import invoices, submissions
from spvhub_efactura.submissions.drafts import submission_drafts
from sqlalchemy import func, select
from submissions_kit import drive, grant_access, invoice_xml, outbox_events

API = "/api/efactura"
XML = {"Content-Type": "application/xml"}


async def _written(h: Harness) -> tuple[int, int, list[tuple[str, str]]]:
    """What refusals must leave alone: the drafts, the submissions, and each draft's state."""
    async with h.runtime.sessions() as s:
        n_drafts = int((await s.execute(select(func.count()).select_from(submission_drafts))).scalar() or 0)
        n_subs = int((await s.execute(select(func.count()).select_from(submissions))).scalar() or 0)
        states = [(r.id, r.state) for r in await s.execute(
            select(submission_drafts.c.id, submission_drafts.c.state).order_by(submission_drafts.c.id))]
    return n_drafts, n_subs, states


async def test_drafts_on_the_filing_clock(fresh_database: str, topic_prefix: str, minio_up: None,
                                          kafka_up: str) -> None:
    emulator = new_emulator(3)
    seller, buyer, client2 = company_cifs(3)
    async with Harness(efactura_settings(fresh_database, topic_prefix), emulator) as h:
        await h.grant("acc", [seller, buyer, client2])
        minter = TokenMinter()
        h.app.state.jwks = minter.verifier()
        await grant_access(h.runtime, "alice", [seller, client2])
        # the accounting firm's accountant, allowed to file for both clients
        await grant_access(h.runtime, "fay", [seller, client2], role="accountant", via_firm_cif="99999990",
                           can_file=True)
        # a member who has not proven control yet, and one who may read but not file
        await grant_access(h.runtime, "carol", [seller], verified=False)
        await grant_access(h.runtime, "rita", [seller], role="accountant", can_file=False)
        alice, fay, bob, carol, rita = (minter.headers(u) for u in ("alice", "fay", "bob", "carol", "rita"))
        svc = h.app.state.deps.submissions
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app), base_url="http://efactura",
                                     timeout=60) as api:
            # issued Friday 29 May 2026; Monday 1 June (Whit Monday) is a public holiday: the term ends Monday 8 June
            r = await api.post(f"{API}/companies/{seller}/drafts", headers={**alice, **XML},
                               content=invoice_xml(seller, buyer, "DRAFT-0529", issue=date(2026, 5, 29)))
            assert r.status_code == 201, r.text
            may = r.json()
            assert may["kind"] == "draft" and may["state"] == "draft" and may["number"] == "DRAFT-0529"
            assert may["filing_deadline"] == "2026-06-08"
            assert datetime.fromisoformat(may["filing_deadline_at"]) == datetime(2026, 6, 8, 23, 59, 59, 999999,
                                                                                 RO_TZ)
            assert may["deadline_state"] == "on_time" and may["filed_late"] is None
            # the same XML again is the same draft
            again = await api.post(f"{API}/companies/{seller}/drafts", headers={**alice, **XML},
                                   content=invoice_xml(seller, buyer, "DRAFT-0529", issue=date(2026, 5, 29)))
            assert again.status_code == 200 and again.json()["id"] == may["id"]
            # validated offline like a submission: an invalid one is not stored
            bad = await api.post(f"{API}/companies/{seller}/drafts", headers={**alice, **XML},
                                 content=invoice_xml(seller, buyer, "DRAFT-BAD1", issue=date(2026, 3, 9),
                                                     customization_ok=False))
            assert bad.status_code == 422 and bad.json()["error"]["code"] == "invoice_invalid", bad.text
            # someone else's invoice is not this company's draft
            other = await api.post(f"{API}/companies/{client2}/drafts", headers={**alice, **XML},
                                   content=invoice_xml(seller, buyer, "DRAFT-X1", issue=date(2026, 3, 9)))
            assert other.status_code == 422 and other.json()["error"]["code"] == "seller_mismatch"

            # the firm's one list: drafts and submissions of all its clients together, soonest deadline first
            # (the emulator's clock is in March 2026)
            r = await api.post(f"{API}/companies/{client2}/submissions", headers={**alice, **XML},
                               params={"offline_validation": "false"},
                               content=invoice_xml(client2, buyer, "SUB-0306", issue=date(2026, 3, 6),
                                                   seller_county="ZZ"))
            assert r.status_code == 202, r.text
            rejected = await drive(h, r.json()["id"], ("rejected",))  # not filed: on the clock
            d0309 = (await api.post(f"{API}/companies/{seller}/drafts", headers={**fay, **XML},
                                    content=invoice_xml(seller, buyer, "DRAFT-0309", issue=date(2026, 3, 9)))).json()
            d0305 = (await api.post(f"{API}/companies/{client2}/drafts", headers={**fay, **XML},
                                    content=invoice_xml(client2, buyer, "DRAFT-0305",
                                                        issue=date(2026, 3, 5)))).json()
            assert d0309["filing_deadline"] == "2026-03-16" and d0305["filing_deadline"] == "2026-03-12"
            everyone = (await api.get(f"{API}/filing-deadlines", headers=fay)).json()
            assert [(i["cif"], i["number"], i["kind"]) for i in everyone["items"]] == [
                (client2, "DRAFT-0305", "draft"), (client2, "SUB-0306", "invoice"),
                (seller, "DRAFT-0309", "draft"), (seller, "DRAFT-0529", "draft")]
            assert everyone["items"][1]["id"] == rejected.id
            assert sum(everyone["counts"].values()) == 4
            # the company's own deadline view has its drafts too
            mine = (await api.get(f"{API}/companies/{seller}/filing-deadlines", headers=alice)).json()
            assert [i["number"] for i in mine["items"]] == ["DRAFT-0309", "DRAFT-0529"]
            # one who may read the company but not file for it sees its submissions, not its drafts
            assert (await api.get(f"{API}/companies/{seller}/filing-deadlines", headers=rita)).json()["items"] == []
            listed = (await api.get(f"{API}/companies/{seller}/drafts", headers=alice)).json()
            assert [i["number"] for i in listed["items"]] == ["DRAFT-0309", "DRAFT-0529"]

            # refusals: a stranger, an unverified member, a member who may not file; nothing written
            before = await _written(h)
            xml = invoice_xml(seller, buyer, "DRAFT-NO1", issue=date(2026, 3, 9))
            for who, code in ((bob, "no_access_to_company"), (carol, "company_not_verified"),
                              (rita, "filing_not_allowed")):
                r = await api.post(f"{API}/companies/{seller}/drafts", headers={**who, **XML}, content=xml)
                assert r.status_code == 403 and r.json()["error"]["code"] == code, r.text
                r = await api.get(f"{API}/companies/{seller}/drafts", headers=who)
                assert r.status_code == 403 and r.json()["error"]["code"] == code, r.text
                r = await api.post(f"{API}/drafts/{d0309['id']}/file", headers=who)
                # a stranger is not told the draft exists; the company's own members are told why
                assert r.status_code == (404 if who is bob else 403), r.text
                assert (await api.get(f"{API}/drafts/{d0309['id']}", headers=who)).status_code in (403, 404)
                assert (await api.delete(f"{API}/drafts/{d0309['id']}", headers=who)).status_code in (403, 404)
            assert await _written(h) == before

            # a draft close to its deadline is warned about once, like a submission still to be filed
            real_clock = svc.clock
            try:
                # Wednesday 11 March 12:00: DRAFT-0305 ends Thursday night (36 working hours): not yet
                svc.clock = ManualClock(datetime(2026, 3, 11, 12, tzinfo=RO_TZ))
                assert await svc.scan_deadlines() == 0
                # Thursday 12 March 12:00: 12 working hours left: warned (SUB-0306 and DRAFT-0309 have longer)
                svc.clock = ManualClock(datetime(2026, 3, 12, 12, tzinfo=RO_TZ))
                assert await svc.scan_deadlines() == 1
                assert await svc.scan_deadlines() == 0  # once, however often the scan runs
            finally:
                svc.clock = real_clock
            warned = [e for e in await outbox_events(h, "efactura.filing-deadline-approaching") if e.draft_id]
            assert [(e.draft_id, e.cif, e.state, e.submission_id) for e in warned] == [
                (d0305["id"], client2, "draft", "")]
            assert warned[0].deadline == date(2026, 3, 12) and warned[0].working_hours_left == 12.0
            assert warned[0].submitted_by == "fay"

            # filed with one call, through the normal submission path
            r = await api.post(f"{API}/drafts/{d0309['id']}/file", headers=alice)
            assert r.status_code == 202, r.text
            sub = r.json()
            assert sub["number"] == "DRAFT-0309" and sub["submitted_by"] == "alice" and sub["uploaded_at"]
            assert sub["filing_deadline"] == "2026-03-16" and sub["filed_late"] is False
            filed = (await api.get(f"{API}/drafts/{d0309['id']}", headers=alice)).json()
            assert filed["state"] == "filed" and filed["submission_id"] == sub["id"]
            assert filed["links"]["submission"] == f"/api/efactura/submissions/{sub['id']}"
            # filing it again answers the same submission; nothing new is uploaded
            r = await api.post(f"{API}/drafts/{d0309['id']}/file", headers=alice)
            assert r.status_code == 200 and r.json()["id"] == sub["id"]
            async with h.runtime.sessions() as s:
                n = (await s.execute(select(func.count()).select_from(submissions).where(
                    submissions.c.number == "DRAFT-0309"))).scalar()
            assert n == 1
            await drive(h, sub["id"], ("accepted",))
            # no longer a draft on the clock: the submission carries it (filed, so not in the open list)
            mine = (await api.get(f"{API}/companies/{seller}/filing-deadlines", headers=alice)).json()
            assert [i["number"] for i in mine["items"]] == ["DRAFT-0529"]
            assert (await api.delete(f"{API}/drafts/{d0309['id']}", headers=alice)).status_code == 409
            # the same invoice sent directly instead of through its draft: the submission carries the clock, the
            # draft is not counted twice
            r = await api.post(f"{API}/companies/{seller}/submissions", headers={**alice, **XML},
                               content=invoice_xml(seller, buyer, "DRAFT-0529", issue=date(2026, 5, 29)))
            assert r.status_code == 202, r.text
            mine = (await api.get(f"{API}/companies/{seller}/filing-deadlines", headers=alice)).json()
            assert all(i["kind"] != "draft" for i in mine["items"]), mine
            assert (await api.get(f"{API}/companies/{seller}/drafts", headers=alice)).json()["items"] == []
            # a draft not filed can be dropped
            assert (await api.delete(f"{API}/drafts/{may['id']}", headers=alice)).status_code == 204
            assert (await api.get(f"{API}/drafts/{may['id']}", headers=alice)).status_code == 404


async def test_inbox_sent_invoice_filed_late(fresh_database: str, topic_prefix: str, minio_up: None,
                                             kafka_up: str) -> None:
    emulator = new_emulator(2)
    seller, buyer = company_cifs(2)
    async with Harness(efactura_settings(fresh_database, topic_prefix), emulator) as h:
        await h.grant("acc", [seller, buyer])
        minter = TokenMinter()
        h.app.state.jwks = minter.verifier()
        await grant_access(h.runtime, "alice", [seller])
        # filed outside spvhub (another program, ANAF's own form): data_creare is the filing moment
        # issued Friday 27 Feb 2026, term ended Friday 6 March, accepted Monday 9 March: late by one working day
        await h.admin("invoices", {"seller": seller, "buyer": buyer, "at": "2026-03-09T10:00:00+02:00",
                                   "xml": invoice_xml(seller, buyer, "OUT-LATE1", issue=date(2026, 2, 27)).decode()})
        # issued Thursday 5 March, term ends Thursday 12 March, accepted Monday 9 March: on time
        await h.admin("invoices", {"seller": seller, "buyer": buyer, "at": "2026-03-09T11:00:00+02:00",
                                   "xml": invoice_xml(seller, buyer, "OUT-OK1", issue=date(2026, 3, 5)).decode()})
        # the last minute of the term (Friday 6 March 23:59 Bucharest): on time
        await h.admin("invoices", {"seller": seller, "buyer": buyer, "at": "2026-03-06T23:59:00+02:00",
                                   "xml": invoice_xml(seller, buyer, "OUT-EDGE1", issue=date(2026, 2, 27)).decode()})
        await h.sync_until_settled([seller, buyer])
        async with h.runtime.sessions() as s:
            rows = {(r.cif, r.number): r for r in await s.execute(
                select(invoices.c.id, invoices.c.cif, invoices.c.number, invoices.c.direction, invoices.c.filed_late))}
        assert rows[(seller, "OUT-LATE1")].direction == "sent" and rows[(seller, "OUT-LATE1")].filed_late is True
        assert rows[(seller, "OUT-OK1")].filed_late is False and rows[(seller, "OUT-EDGE1")].filed_late is False
        # the buyer's copy is a received invoice: the seller's term is not the buyer's to be told
        assert rows[(buyer, "OUT-LATE1")].direction == "received" and rows[(buyer, "OUT-LATE1")].filed_late is None

        late = await outbox_events(h, "efactura.filed-late")
        assert len(late) == 1
        e = late[0]
        assert (e.cif, e.number, e.filed_outside, e.submission_id) == (seller, "OUT-LATE1", True, "")
        assert e.invoice_id == rows[(seller, "OUT-LATE1")].id and e.message_id
        assert e.issue_date == date(2026, 2, 27) and e.deadline == date(2026, 3, 6) and e.working_days_late == 1
        assert e.filed_at == datetime(2026, 3, 9, 10, tzinfo=RO_TZ)

        # the invoice list and detail show the mark
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app), base_url="http://efactura",
                                     timeout=60) as api:
            alice = minter.headers("alice")
            page = (await api.get(f"{API}/invoices", headers=alice, params={"cif": seller})).json()
            marks = {i["number"]: i["filed_late"] for i in page["items"]}
            assert marks == {"OUT-LATE1": True, "OUT-OK1": False, "OUT-EDGE1": False}
            one = (await api.get(f"{API}/invoices/{rows[(seller, 'OUT-LATE1')].id}", headers=alice)).json()
            assert one["filed_late"] is True

        # a later sync (the same messages listed again) tells nobody twice
        await h.admin("clock", {"advance_seconds": 3600})
        await h.sync_until_settled([seller, buyer])
        assert len(await outbox_events(h, "efactura.filed-late")) == 1
