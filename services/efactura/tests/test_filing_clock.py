"""The filing clock against the real PostgreSQL/Kafka/MinIO and the in-process emulator: each submission carries its
legal deadline and on_time / due_soon / late state; an invoice issued on a Friday before a public holiday gets the
right deadline; one filed after its deadline is marked late and `efactura.filed-late` is published once; the scan
publishes `efactura.filing-deadline-approaching` once per invoice still to be filed; a company's list and an
accounting firm's list across its clients come soonest deadline first, scoped by the access read model."""
from __future__ import annotations

from datetime import date, datetime

import httpx
from efactura_kit import Harness, company_cifs, efactura_settings, new_emulator
from spvhub_common.events import decode
from spvhub_common.ro_calendar import RO_TZ
from spvhub_common.testtokens import TokenMinter
from spvhub_efactura.adapters.orm import outbox
from sqlalchemy import select
from submissions_kit import drive, grant_access, invoice_xml

API = "/api/efactura"
XML = {"Content-Type": "application/xml"}


class FixedClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


async def _events(h: Harness, topic: str) -> list:  # type: ignore[type-arg]
    async with h.runtime.sessions() as s:
        rows = (await s.execute(select(outbox.c.payload).where(outbox.c.topic == topic))).scalars().all()
    return [decode(p)[1] for p in rows]


async def test_filing_clock(fresh_database: str, topic_prefix: str, minio_up: None, kafka_up: str) -> None:
    emulator = new_emulator(4)
    seller, buyer, client2, unconnected = company_cifs(4)
    async with Harness(efactura_settings(fresh_database, topic_prefix), emulator) as h:
        await h.grant("acc", [seller, buyer, client2])
        minter = TokenMinter()
        h.app.state.jwks = minter.verifier()
        await grant_access(h.runtime, "alice", [seller, unconnected])
        await grant_access(h.runtime, "fay", [unconnected, client2], role="accountant", via_firm_cif="99999990")
        alice, fay, bob = (minter.headers(u) for u in ("alice", "fay", "bob"))
        svc = h.app.state.submissions
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
            late = await _events(h, "efactura.filed-late")
            assert [e.submission_id for e in late] == [sub["id"]]  # once, and not for the one filed in time
            assert late[0].deadline == date(2026, 3, 6) and late[0].working_days_late == 2
            assert late[0].issue_date == date(2026, 2, 27) and late[0].cif == seller

            # not filed yet (no connection may act for the company): the clock keeps running
            r = await api.post(f"{API}/companies/{unconnected}/submissions", headers={**alice, **XML},
                               content=invoice_xml(unconnected, buyer, "OPEN-1", issue=date(2026, 3, 6)))
            assert r.status_code == 202 and r.json()["state"] == "received", r.text
            open1 = r.json()
            assert open1["filing_deadline"] == "2026-03-13" and open1["filed_late"] is None
            r = await api.post(f"{API}/companies/{unconnected}/submissions", headers={**fay, **XML},
                               content=invoice_xml(unconnected, buyer, "OPEN-0", issue=date(2026, 3, 5)))
            assert r.status_code in (202, 403), r.text  # a firm files only when the client allowed it
            real_clock = svc.clock
            try:
                # Thursday 12 March 12:00: 36 working hours left, more than the 24 h warning window
                svc.clock = FixedClock(datetime(2026, 3, 12, 12, tzinfo=RO_TZ))
                assert await svc.scan_deadlines() == 0
                # Friday 13 March 01:00: 23 h left: warned once, however often the scan runs
                svc.clock = FixedClock(datetime(2026, 3, 13, 1, tzinfo=RO_TZ))
                assert await svc.scan_deadlines() >= 1
                assert await svc.scan_deadlines() == 0
            finally:
                svc.clock = real_clock
            soon = [e for e in await _events(h, "efactura.filing-deadline-approaching")
                    if e.submission_id == open1["id"]]
            assert len(soon) == 1 and soon[0].deadline == date(2026, 3, 13) and soon[0].working_hours_left == 23.0
            assert soon[0].state == "received" and soon[0].submitted_by == "alice"

            # per company, soonest first; the accepted one is filed, so not in the open list
            body = (await api.get(f"{API}/companies/{unconnected}/filing-deadlines", headers=alice)).json()
            numbers = [i["number"] for i in body["items"]]
            assert "OPEN-1" in numbers and numbers == sorted(numbers, key=lambda n: {"OPEN-0": 0}.get(n, 1))
            assert (await api.get(f"{API}/companies/{seller}/filing-deadlines", headers=alice)).json()["items"] == []
            full = (await api.get(f"{API}/companies/{seller}/filing-deadlines", headers=alice,
                                  params={"open": "false"})).json()["items"]
            assert [(i["number"], i["deadline_state"], i["filed_late"]) for i in full] == [
                ("LATE-1", "late", True), ("MAY-1", "on_time", False)]
            assert (await api.get(f"{API}/companies/{seller}/filing-deadlines", headers=bob)).status_code == 403

            # an accounting firm: one list across its clients, soonest first; nothing of other tenants
            r = await api.post(f"{API}/companies/{client2}/submissions", headers={**alice, **XML},
                               content=invoice_xml(client2, buyer, "C2-1", issue=date(2026, 3, 2)))
            assert r.status_code == 403  # alice has no grant on client2
            everyone = (await api.get(f"{API}/filing-deadlines", headers=fay)).json()
            assert {i["cif"] for i in everyone["items"]} <= {unconnected, client2}
            deadlines = [i["filing_deadline"] for i in everyone["items"]]
            assert "2026-03-13" in deadlines and deadlines == sorted(deadlines)
            assert sum(everyone["counts"].values()) == len(everyone["items"])
            assert (await api.get(f"{API}/filing-deadlines", headers=bob)).json()["items"] == []
