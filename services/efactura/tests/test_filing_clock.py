"""The filing clock against the real PostgreSQL/Kafka/MinIO and the in-process emulator: each submission carries its
legal deadline and on_time / due_soon / late state; an invoice issued on a Friday before a public holiday gets the
right deadline; one filed after its deadline is marked late and `efactura.filed-late` is published once; the scan
publishes `efactura.filing-deadline-approaching` once per invoice still to be filed; a company's list and an
accounting firm's list across its clients come soonest deadline first, scoped by the access read model."""
from __future__ import annotations

from datetime import date, datetime

import httpx
from efactura_kit import Harness, company_cifs, efactura_settings, new_emulator
from spvhub_common.clock import ManualClock
from spvhub_common.ro_calendar import RO_TZ
from spvhub_devtools.testtokens import TokenMinter
from submissions_kit import drive, grant_access, invoice_xml, outbox_events

API = "/api/efactura"
XML = {"Content-Type": "application/xml"}


async def test_filing_clock(fresh_database: str, topic_prefix: str, minio_up: None, kafka_up: str) -> None:
    emulator = new_emulator(3)
    seller, buyer, client2 = company_cifs(3)
    async with Harness(efactura_settings(fresh_database, topic_prefix), emulator) as h:
        await h.grant("acc", [seller, buyer, client2])
        minter = TokenMinter()
        h.app.state.jwks = minter.verifier()
        await grant_access(h.runtime, "alice", [seller, client2])
        await grant_access(h.runtime, "fay", [seller, client2], role="accountant", via_firm_cif="99999990")
        alice, fay, bob = (minter.headers(u) for u in ("alice", "fay", "bob"))
        svc = h.app.state.deps.submissions
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app), base_url="http://efactura",
                                     timeout=60) as api:
            # (the emulator's clock, which the service follows here, is in March 2026)
            # issued Friday 29 May 2026; Monday 1 June is a public holiday: the term ends on Monday 8 June
            r = await api.post(f"{API}/companies/{seller}/submissions", headers={**alice, **XML},
                               content=invoice_xml(seller, buyer, "MAY-1", issue=date(2026, 5, 29)))
            assert r.status_code == 202, r.text
            may = r.json()
            assert may["filing_deadline"] == "2026-06-08"
            assert datetime.fromisoformat(may["filing_deadline_at"]) == datetime(2026, 6, 8, 23, 59, 59, 999999,
                                                                                 RO_TZ)
            assert may["uploaded_at"] and may["deadline_state"] == "on_time" and may["filed_late"] is False
            # issued Friday 27 Feb: the term ended on Friday 6 March; filed on 10 March: late
            r = await api.post(f"{API}/companies/{seller}/submissions", headers={**alice, **XML},
                               content=invoice_xml(seller, buyer, "LATE-1", issue=date(2026, 2, 27)))
            sub = r.json()
            assert sub["filing_deadline"] == "2026-03-06"
            assert sub["deadline_state"] == "late" and sub["filed_late"] is True
            await drive(h, sub["id"], ("accepted",))
            await drive(h, may["id"], ("accepted",))
            for _ in range(3):
                await svc.tick()
            late = await outbox_events(h, "efactura.filed-late")
            assert [e.submission_id for e in late] == [sub["id"]]  # once, and not for the one filed in time
            assert late[0].deadline == date(2026, 3, 6) and late[0].working_days_late == 2
            assert late[0].issue_date == date(2026, 2, 27) and late[0].cif == seller

            # rejected by ANAF and not filed again: still to be filed, the clock keeps running
            opened = {}
            for number, issued in (("OPEN-1", date(2026, 3, 6)), ("OPEN-0", date(2026, 3, 5))):
                r = await api.post(f"{API}/companies/{client2}/submissions", headers={**alice, **XML},
                                   params={"offline_validation": "false"},
                                   content=invoice_xml(client2, buyer, number, issue=issued, seller_county="ZZ"))
                assert r.status_code == 202, r.text
                opened[number] = (await drive(h, r.json()["id"], ("rejected",))).id
            got = (await api.get(f"{API}/submissions/{opened['OPEN-1']}", headers=alice)).json()
            assert got["filing_deadline"] == "2026-03-13" and got["filed_late"] is None
            assert got["deadline_state"] == "on_time"
            real_clock = svc.clock
            try:
                # Thursday 12 March 12:00: OPEN-0 ends tonight (12 working hours left): warned; OPEN-1 has 36
                svc.clock = ManualClock(datetime(2026, 3, 12, 12, tzinfo=RO_TZ))
                assert await svc.scan_deadlines() == 1
                # Friday 13 March 01:00: OPEN-1 has 23 h left: warned; OPEN-0 is late now (never "approaching")
                svc.clock = ManualClock(datetime(2026, 3, 13, 1, tzinfo=RO_TZ))
                assert await svc.scan_deadlines() == 1
                assert await svc.scan_deadlines() == 0  # once, however often the scan runs
            finally:
                svc.clock = real_clock
            soon = {e.submission_id: e for e in await outbox_events(h, "efactura.filing-deadline-approaching")}
            assert set(soon) == {opened["OPEN-0"], opened["OPEN-1"]}
            one = soon[opened["OPEN-1"]]
            assert one.deadline == date(2026, 3, 13) and one.working_hours_left == 23.0
            assert one.state == "rejected" and one.submitted_by == "alice" and one.cif == client2
            assert soon[opened["OPEN-0"]].working_hours_left == 12.0

            # per company, soonest first; filed ones are not in the open list
            body = (await api.get(f"{API}/companies/{client2}/filing-deadlines", headers=alice)).json()
            assert [i["number"] for i in body["items"]] == ["OPEN-0", "OPEN-1"]
            assert (await api.get(f"{API}/companies/{seller}/filing-deadlines", headers=alice)).json()["items"] == []
            full = (await api.get(f"{API}/companies/{seller}/filing-deadlines", headers=alice,
                                  params={"open": "false"})).json()["items"]
            assert [(i["number"], i["deadline_state"], i["filed_late"]) for i in full] == [
                ("LATE-1", "late", True), ("MAY-1", "on_time", False)]
            assert (await api.get(f"{API}/companies/{seller}/filing-deadlines", headers=bob)).status_code == 403

            # an accounting firm: one list across its clients, soonest first; nobody else's
            everyone = (await api.get(f"{API}/filing-deadlines", headers=fay)).json()
            assert [(i["cif"], i["number"]) for i in everyone["items"]] == [(client2, "OPEN-0"), (client2, "OPEN-1")]
            assert sum(everyone["counts"].values()) == 2
            assert (await api.get(f"{API}/filing-deadlines", headers=bob)).json()["items"] == []

            # filed again (a corrected document under a new key): no longer open
            r = await api.post(f"{API}/companies/{client2}/submissions",
                               headers={**alice, **XML, "Idempotency-Key": "refile-open-1"},
                               content=invoice_xml(client2, buyer, "OPEN-1", issue=date(2026, 3, 6)))
            assert r.status_code == 202, r.text
            body = (await api.get(f"{API}/companies/{client2}/filing-deadlines", headers=alice)).json()
            assert [i["number"] for i in body["items"]] == ["OPEN-0"]
