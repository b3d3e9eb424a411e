"""Acceptance of the e-Factura inbox against the real PostgreSQL, Kafka and MinIO and the in-process ANAF emulator.

Default size: 20 companies x ~30 invoices (SPVHUB_EFACTURA_FULL=1: 20 x ~300 over 60 days, several minutes;
the full size also runs in bench/bench_sync.py).
"""
from __future__ import annotations

import asyncio
import os
from collections import Counter
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaConsumer
from anaf_emulator.ubl import _vat_breakdown
from efactura_kit import Harness, company_cifs, efactura_settings, new_emulator
from spvhub_common.events import decode
from spvhub_efactura.adapters.orm import invoices, messages, outbox, quota_ledger
from sqlalchemy import func, select

FULL = os.environ.get("SPVHUB_EFACTURA_FULL") == "1"


def expected_total(emulator, upload_index: str) -> Decimal | None:
    up = emulator.state.emulator.uploads.get(int(upload_index))
    if up is None or up.spec is None or up.outcome != "ok":
        return None
    net = sum((ln.net for ln in up.spec.lines), Decimal("0"))
    vat = sum((b[4] for b in _vat_breakdown(up.spec.lines)), Decimal("0"))
    return net + vat


async def test_many_companies_with_faults_archive_exactly_the_emulators_messages(
        fresh_database: str, topic_prefix: str, minio_up: None, kafka_up: str) -> None:
    n, per_day = (20, 5.0) if FULL else (20, 0.5)
    emulator = new_emulator(n)
    settings = efactura_settings(fresh_database, topic_prefix, max_concurrent_companies=10,
                                 downloads_per_company=8, anaf_timeout=1.0)
    cifs = company_cifs(n)
    async with Harness(settings, emulator) as h:
        await h.admin("switches", {"rate_limit_per_minute": 0})
        await h.admin("invoices/generate", {"cuis": cifs, "per_company_per_day": per_day, "days": 59})
        await h.admin("faults", {"family": "efactura", "latency_ms": [50, 200], "error_rate": 0.05,
                                 "error_status": 503, "timeout_rate": 0.01, "timeout_seconds": 3})
        await h.grant("acc", cifs)
        await h.sync_until_settled(rounds=200)
        await h.admin("faults", method="DELETE")

        ledger = await h.ledger()
        emu = {(m["cif"], m["id"]): m for c in cifs for m in await h.emulator_messages(c)}
        assert len(emu) >= n * per_day * 59 * 0.8
        archived = {k for k, r in ledger.items() if r["state"] == "archived"}
        # messages in ANAF's boundary band (listed, no longer downloadable) end as lost, with ANAF's reason
        band = {k for k, m in emu.items() if not m["downloadable"]}
        lost = {k for k, r in ledger.items() if r["state"] == "lost"}
        # (the emulator clock runs during the sync, so a message may be archived before it enters the band)
        assert lost <= band and all("60 de zile" in ledger[k]["lost_reason"] for k in lost)
        assert set(ledger) == set(emu) and archived | lost == set(emu)
        assert archived >= set(emu) - band, (len(archived), len(emu), Counter(r["state"] for r in ledger.values()))
        arch = [ledger[k] for k in archived]
        assert all(r["signature_status"] == "valid" for r in arch)
        assert all(r["parse_status"] == "ok" for r in arch)
        counters = await h.admin("counters", method="GET")
        assert {k for k in counters["messages"]} == {mid for (_c, mid) in archived}
        # every message downloaded successfully exactly once
        assert all(v["descarcare"] == 1 for k, v in counters["messages"].items()), \
            Counter(v["descarcare"] for v in counters["messages"].values())

        async with h.runtime.sessions() as s:
            rows = (await s.execute(select(invoices.c.cif, invoices.c.message_id, invoices.c.document_type,
                                           invoices.c.total_amount, invoices.c.upload_index, invoices.c.direction,
                                           invoices.c.partner_cif, invoices.c.seller_cif, invoices.c.buyer_cif)
                                    )).all()
            dup = (await s.execute(select(func.count()).select_from(
                select(invoices.c.cif, invoices.c.message_id).group_by(invoices.c.cif, invoices.c.message_id)
                .having(func.count() > 1).subquery()))).scalar()
            events = (await s.execute(select(outbox.c.topic, outbox.c.payload))).all()
        assert dup == 0
        checked = 0
        for r in rows:
            if r.document_type in ("invoice", "credit_note"):
                exp = expected_total(emulator, r.upload_index)
                assert exp is not None and r.total_amount == exp, (r, exp)
                checked += 1
                assert r.partner_cif == (r.seller_cif if r.direction == "received" else r.buyer_cif)
        assert checked > 0
        # one invoice-downloaded event per invoice row, none twice
        downloaded = [decode(p)[1] for t, p in events if t == "efactura.invoice-downloaded"]
        keys = Counter((e.cif, e.message_id) for e in downloaded)
        assert max(keys.values()) == 1
        assert len(keys) == checked
        syncs = [decode(p)[1] for t, p in events if t == "efactura.sync-completed"]
        assert {e.cif for e in syncs if e.first_sync} == set(cifs)

        # consumers' view: every event reached Kafka; deduplicated by event id they match the outbox exactly
        await asyncio.sleep(1.0)
        consumer = AIOKafkaConsumer(f"{topic_prefix}efactura.invoice-downloaded", bootstrap_servers=kafka_up,
                                    auto_offset_reset="earliest", group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            seen: set[str] = set()
            deadline = asyncio.get_running_loop().time() + 30
            while len(seen) < len(downloaded) and asyncio.get_running_loop().time() < deadline:
                batch = await consumer.getmany(timeout_ms=1000)
                for recs in batch.values():
                    for rec in recs:
                        env, ev = decode(rec.value)
                        seen.add(env.id)
        finally:
            await consumer.stop()
        assert len(seen) == len(downloaded)

        # a second sync finds nothing new and downloads nothing
        before = await h.admin("counters", method="GET")
        await h.sync_until_settled(cifs)
        after = await h.admin("counters", method="GET")
        assert after["messages"] == before["messages"]
        assert len(await h.ledger()) == len(ledger)


async def test_late_indexed_message_is_caught_by_the_overlap(fresh_database: str, topic_prefix: str,
                                                             minio_up: None, kafka_up: str) -> None:
    emulator = new_emulator(2)
    settings = efactura_settings(fresh_database, topic_prefix, overlap_seconds=3600)
    cifs = company_cifs(2)
    async with Harness(settings, emulator) as h:
        await h.grant("acc", cifs)
        await h.sync_until_settled(cifs)
        # an invoice whose data_creare is 10 minutes ago but which only becomes visible now (indexing lag)
        clock = emulator.state.emulator.clock
        at = (h.clock.now() - timedelta(minutes=10)).isoformat()
        res = await h.admin("invoices", {"seller": cifs[0], "buyer": cifs[1], "at": at, "lag": 900})
        await h.sync_until_settled(cifs)
        ledger = await h.ledger()
        assert all((m["cif"], m["id"]) not in ledger for m in res["messages"])
        await h.admin("clock", {"advance_seconds": 16 * 60})
        await h.sync_until_settled(cifs)
        ledger = await h.ledger()
        for m in res["messages"]:
            assert ledger[(m["cif"], m["id"])]["state"] == "archived"
        _ = clock


async def test_download_cap_two_no_third_attempt_and_completes_after_midnight(
        fresh_database: str, topic_prefix: str, minio_up: None, kafka_up: str) -> None:
    """Cap 2 in the emulator and in our budget: two attempts fail after download (blob store down), the third
    is refused by the budget before reaching ANAF, quota-exhausted is emitted once, and after the emulator's
    midnight the message is archived. A second message already spent elsewhere today is recognised by ANAF's
    wording."""
    emulator = new_emulator(1, download_cap_per_message=2)
    settings = efactura_settings(fresh_database, topic_prefix, anaf_download_cap=2, retry_base_seconds=0.0)
    (cif,) = company_cifs(1)

    class FlakyBlobs:
        def __init__(self, inner):
            self.inner, self.fail = inner, 2

        async def put(self, key, data, *a, **kw):
            if key.endswith(".zip") and self.fail > 0:
                self.fail -= 1
                raise ConnectionError("blob store down")
            return await self.inner.put(key, data, *a, **kw)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    from spvhub_common.blobs import S3BlobStore
    inner = S3BlobStore(settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key.get_secret_value(),
                        settings.s3_bucket)
    await inner.ensure_bucket()
    async with Harness(settings, emulator, blobs=FlakyBlobs(inner)) as h:
        now = h.clock.now()
        one = await h.admin("invoices", {"seller": cif, "buyer": "14399840",
                                         "at": (now - timedelta(hours=2)).isoformat()})
        two = await h.admin("invoices", {"seller": cif, "buyer": "14399840",
                                         "at": (now - timedelta(hours=1)).isoformat()})
        mid1 = [m["id"] for m in one["messages"] if m["cif"] == cif][0]
        mid2 = [m["id"] for m in two["messages"] if m["cif"] == cif][0]
        # someone else (another tool) spent message two's cap today
        tok = (await h.tokens.access_token("acc")).access_token
        for _ in range(2):
            r = await h.emu.get("/test/FCTEL/rest/descarcare", params={"id": mid2},
                                headers={"Authorization": f"Bearer {tok}"})
            assert r.content[:2] == b"PK"
        await h.grant("acc", [cif])
        for _ in range(6):
            await h.sync_until_settled([cif])
        counters = await h.admin("counters", method="GET")
        assert counters["messages"][mid1]["descarcare"] == 2  # no third attempt reached ANAF
        assert counters["endpoints"].get("GET /FCTEL/rest/descarcare", 0) == 2 + 2 + 1  # ours: 2 + 1 refused
        ledger = await h.ledger()
        assert ledger[(cif, mid1)]["state"] == "failed" and ledger[(cif, mid2)]["state"] == "failed"
        async with h.runtime.sessions() as s:
            quota = (await s.execute(select(quota_ledger))).mappings().all()
            topics = [t for (t,) in (await s.execute(select(outbox.c.topic))).all()]
        assert {q["scope_key"] for q in quota} == {mid1, mid2}
        assert topics.count("efactura.quota-exhausted") == 2
        # after the emulator's midnight both complete
        local = emulator.state.emulator.clock.now()
        midnight = (local + timedelta(days=1)).replace(hour=0, minute=5, second=0, microsecond=0)
        await h.admin("clock", {"now": midnight.isoformat()})
        await h.sync_until_settled([cif])
        ledger = await h.ledger()
        assert ledger[(cif, mid1)]["state"] == "archived"
        assert ledger[(cif, mid2)]["state"] == "archived"


async def test_listed_but_past_download_window_is_recorded_lost(fresh_database: str, topic_prefix: str,
                                                                minio_up: None, kafka_up: str) -> None:
    emulator = new_emulator(1, download_band_hours=48)
    settings = efactura_settings(fresh_database, topic_prefix)
    (cif,) = company_cifs(1)
    async with Harness(settings, emulator) as h:
        now = h.clock.now()
        old = await h.admin("invoices", {"seller": cif, "buyer": "14399840",
                                         "at": (now - timedelta(days=59)).isoformat()})
        mid = [m["id"] for m in old["messages"] if m["cif"] == cif][0]
        await h.grant("acc", [cif])
        await h.sync_until_settled([cif])
        await h.sync_until_settled([cif])
        row = (await h.ledger())[(cif, mid)]
        assert row["state"] == "lost"
        assert "60 de zile" in row["lost_reason"]
        counters = await h.admin("counters", method="GET")
        assert counters["endpoints"]["GET /FCTEL/rest/descarcare"] == 1  # not retried
        async with h.runtime.sessions() as s:
            topics = [t for (t,) in (await s.execute(select(outbox.c.topic))).all()]
        assert topics.count("efactura.message-lost") == 1


async def test_pause_on_reauthorization_and_resume(fresh_database: str, topic_prefix: str, minio_up: None,
                                                   kafka_up: str) -> None:
    from datetime import datetime

    from spvhub_common.events.auth import ReauthorizationRequired, TokenRefreshed
    from spvhub_efactura.handlers import on_reauthorization_required, on_token_refreshed
    emulator = new_emulator(1)
    settings = efactura_settings(fresh_database, topic_prefix)
    (cif,) = company_cifs(1)
    async with Harness(settings, emulator) as h:
        await h.grant("acc", [cif])
        await h.sync_until_settled([cif])
        async with h.runtime.uow() as uow:
            await on_reauthorization_required(ReauthorizationRequired(
                connection_id="acc", company_cif=cif, user_id="u", reason="horizon_reached", message="m"),
                None, uow, None)
            await uow.commit()
        await h.admin("invoices", {"seller": cif, "buyer": "14399840",
                                   "at": (h.clock.now() - timedelta(minutes=5)).isoformat()})
        await h.sync.request_sync(cif)
        assert await h.sync.tick() == []  # paused: nothing claimed
        async with h.runtime.uow() as uow:
            t = datetime.now(UTC)
            await on_token_refreshed(TokenRefreshed(connection_id="acc", company_cif=cif, access_expires_at=t,
                                                    refresh_expires_at=t), None, uow, None)
            await uow.commit()
        await h.sync_until_settled([cif])
        ledger = await h.ledger()
        assert len(ledger) == 1 and all(r["state"] == "archived" for r in ledger.values())


_ = (pytest, messages)
