"""Nothing stuck, nothing silent, against the real PostgreSQL, Kafka and MinIO and the in-process emulator: documents
ANAF accepted whose values no column holds (`1E+30`, thirty digits, `Infinity`, an over-long code, a year 0) are
archived after one download, kept with those fields empty and named, flagged by an event and in the sync health,
and never downloaded again."""
from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

import httpx
from anaf_emulator.ubl import InvoiceSpec, Line, Party, render
from efactura_kit import Harness, company_cifs, efactura_settings, new_emulator
from spvhub_common.events import decode
from spvhub_devtools.testtokens import TokenMinter
from spvhub_efactura.adapters.orm import invoices, outbox
from sqlalchemy import select
from submissions_kit import grant_access

API = "/api/efactura"


def document(seller: str, buyer: str, number: str, **swap: str) -> str:
    """An emulator invoice with some element texts replaced as given ({local element name: text})."""
    lines = [Line("Servicii", Decimal(2), "H87", Decimal("100.00"), "S", Decimal(21))]
    xml = render(InvoiceSpec(number, date(2026, 3, 9), Party(seller, "ALFA SRL"), Party(buyer, "BETA SRL", county="B"),
                             lines)).decode()
    for name, text in swap.items():
        xml, n = re.subn(rf"(<cbc:{name}\b[^>]*>)[^<]*(</cbc:{name}>)", rf"\g<1>{text}\g<2>", xml, count=1)
        assert n == 1, name
    return xml


async def test_unstorable_values_are_archived_once_flagged_and_shown(fresh_database: str, topic_prefix: str,
                                                                    minio_up: None, kafka_up: str) -> None:
    emulator = new_emulator(2)
    settings = efactura_settings(fresh_database, topic_prefix)
    seller, buyer = company_cifs(2)
    cases = {
        "huge": ({"TaxInclusiveAmount": "1E+30", "PayableAmount": "1E+30"}, {"total_amount", "payable_amount"}),
        "digits": ({"TaxExclusiveAmount": "123456789012345678901234567890.00"}, {"net_amount"}),
        "infinite": ({"TaxAmount": "Infinity"}, {"vat_amount"}),
        "currency": ({"DocumentCurrencyCode": "EURO"}, {"currency"}),
        "year0": ({"IssueDate": "0000-01-01"}, {"issue_date"}),
        "number": ({"ID": "N" * 600}, {"number"}),
    }
    async with Harness(settings, emulator) as h:
        ids: dict[str, str] = {}
        at = (h.clock.now() - timedelta(hours=2)).isoformat()
        for name, (swap, _) in cases.items():
            body = {"seller": seller, "buyer": buyer, "at": at,
                    "xml": document(seller, buyer, f"BAD-{name}", **swap)}
            r = await h.admin("invoices", body)
            ids[name] = next(m["id"] for m in r["messages"] if m["cif"] == seller)
        normal = await h.admin("invoices", {"seller": seller, "buyer": buyer, "at": at})
        ok_id = next(m["id"] for m in normal["messages"] if m["cif"] == seller)
        await h.admin("counters", method="DELETE")
        await h.grant("acc", [seller])
        await h.sync_until_settled()

        ledger = await h.ledger()
        counters = await h.admin("counters", method="GET")
        for name, mid in ids.items():
            row = ledger[(seller, mid)]
            assert row["state"] == "archived" and row["zip_key"] and row["signature_status"] == "valid", (name, row)
            assert row["problem"] and "fields_not_stored" in row["problem"], (name, row["problem"])
            assert counters["messages"][mid]["descarcare"] == 1, (name, counters["messages"][mid])
        assert ledger[(seller, ok_id)]["problem"] is None and ledger[(seller, ok_id)]["state"] == "archived"
        assert await h.deps.blobs.stat(ledger[(seller, ids["huge"])]["zip_key"]) is not None

        async with h.runtime.sessions() as s:
            rows = {r["message_id"]: dict(r) for r in (await s.execute(
                select(invoices).where(invoices.c.cif == seller))).mappings()}
            flagged = [p for t, p in (await s.execute(select(outbox.c.topic, outbox.c.payload))).all()
                       if t == "efactura.document-flagged"]
        for name, mid in ids.items():
            inv, (_, fields) = rows[mid], cases[name]
            assert inv["problem"], name
            for f in fields:
                assert inv[f] is None and f in inv["problem"], (name, f, inv["problem"])
            assert inv["seller_cif"] == seller and inv["document_type"] == "invoice"  # the rest is kept
        assert "1E+30" in rows[ids["huge"]]["problem"] and rows[ids["digits"]]["vat_amount"] is not None
        assert rows[ok_id]["problem"] is None and rows[ok_id]["total_amount"] is not None

        told = {e.message_id: e for e in (decode(p)[1] for p in flagged)}
        assert set(ids.values()) <= set(told) and ok_id not in told
        assert all(told[mid].problem == "fields_not_stored" and told[mid].cif == seller for mid in ids.values())

        # the company's sync health names them
        minter = TokenMinter()
        h.app.state.jwks = minter.verifier()
        await grant_access(h.runtime, "alice", [seller])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app), base_url="http://efactura") as api:
            r = await api.get(f"{API}/companies/{seller}/sync", headers=minter.headers("alice"))
            assert r.status_code == 200, r.text
            st = r.json()
            assert st["messages"]["flagged"] == len(ids) and st["messages"]["pending"] == 0
            shown = {d["message_id"]: d for d in st["flagged_documents"]}
            assert set(shown) == set(ids.values())
            assert all("fields_not_stored" in d["problem"] for d in shown.values())
            detail = await api.get(f"{API}/invoices/{rows[ids['huge']]['id']}", headers=minter.headers("alice"))
            assert detail.status_code == 200 and "total_amount" in detail.json()["problem"]

        # a later sync (a full re-list included) never downloads them again
        await h.sync.request_sync(seller)
        await h.sync_until_settled([seller])
        again = await h.admin("counters", method="GET")
        assert all(again["messages"][mid]["descarcare"] == 1 for mid in ids.values())


async def test_a_value_the_database_refuses_unforeseen_is_stored_bare_not_retried(
        fresh_database: str, topic_prefix: str, minio_up: None, kafka_up: str, monkeypatch) -> None:
    """Should a value slip past the column checks, the database's refusal holds back neither the batch nor the
    message: the others are stored as parsed, this one with its parsed fields empty and the reason, downloaded once."""
    from spvhub_efactura import domain

    monkeypatch.setattr(domain, "unfit_fields", lambda values, capacity: [])  # the checks miss it
    emulator = new_emulator(2)
    settings = efactura_settings(fresh_database, topic_prefix)
    seller, buyer = company_cifs(2)
    async with Harness(settings, emulator) as h:
        at = (h.clock.now() - timedelta(hours=2)).isoformat()
        bad = await h.admin("invoices", {"seller": seller, "buyer": buyer, "at": at, "xml": document(
            seller, buyer, "BAD-1", TaxInclusiveAmount="1E+30", PayableAmount="1E+30")})
        bad_id = next(m["id"] for m in bad["messages"] if m["cif"] == seller)
        good_ids = []
        for _ in range(3):
            r = await h.admin("invoices", {"seller": seller, "buyer": buyer, "at": at})
            good_ids.append(next(m["id"] for m in r["messages"] if m["cif"] == seller))
        await h.admin("counters", method="DELETE")
        await h.grant("acc", [seller])
        await h.sync_until_settled()
        ledger = await h.ledger()
        counters = await h.admin("counters", method="GET")
        assert all(ledger[(seller, m)]["state"] == "archived" for m in [bad_id, *good_ids])
        assert all(counters["messages"][m]["descarcare"] == 1 for m in [bad_id, *good_ids])
        assert "database refused" in (ledger[(seller, bad_id)]["problem"] or "")
        async with h.runtime.sessions() as s:
            rows = {r["message_id"]: dict(r) for r in (await s.execute(
                select(invoices).where(invoices.c.cif == seller))).mappings()}
        assert rows[bad_id]["total_amount"] is None and rows[bad_id]["number"] is None
        assert rows[bad_id]["document_type"] == "invoice" and "22003" in rows[bad_id]["problem"]
        assert all(rows[m]["total_amount"] is not None and rows[m]["problem"] is None for m in good_ids)
