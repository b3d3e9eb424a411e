"""A small end-to-end sync against the in-process emulator and the real PostgreSQL/MinIO."""
from __future__ import annotations

import pytest
from efactura_kit import Harness, company_cifs, efactura_settings, new_emulator


@pytest.mark.parametrize("families", [False, True], ids=["one_base", "family_hosts"])
async def test_first_sync_archives_every_listed_message(fresh_database: str, topic_prefix: str, minio_up: None,
                                                        kafka_up: str, families: bool) -> None:
    """family_hosts: the emulator serves each ANAF host family only under its own prefix and efactura is configured
    with four bases, so a list or download sent to another family's host fails here as it would against ANAF."""
    emulator = new_emulator(2)
    settings = efactura_settings(fresh_database, topic_prefix)
    cifs = company_cifs(2)
    async with Harness(settings, emulator, families=families) as h:
        await h.admin("invoices/generate", {"cuis": cifs, "per_company_per_day": 1, "days": 20})
        await h.grant("acc", cifs)
        await h.sync_until_settled()
        ledger = await h.ledger()
        for cif in cifs:
            expected = {m["id"] for m in await h.emulator_messages(cif)}
            got = {mid for (c, mid), r in ledger.items() if c == cif and r["state"] == "archived"}
            assert expected and got == expected
        assert all(r["signature_status"] == "valid" for r in ledger.values()), \
            {r["signature_status"] + str(r["signature_detail"]) for r in ledger.values()}
        if families:
            assert h.settings.anaf_bases["api"] == "http://emulator/api.anaf.ro"
            assert h.emulator.refused == []


async def test_a_company_waiting_for_a_download_slot_is_listed_meanwhile(fresh_database: str, topic_prefix: str,
                                                                         minio_up: None, kafka_up: str) -> None:
    """One download slot and one company listed ahead: the second company's messages are listed while the first
    downloads, its downloads start only when the slot is free, and both end fully archived."""
    emulator = new_emulator(2)
    settings = efactura_settings(fresh_database, topic_prefix, max_concurrent_companies=1, list_ahead_companies=1,
                                 downloads_per_company=2)
    cifs = company_cifs(2)
    async with Harness(settings, emulator) as h:
        await h.admin("invoices/generate", {"cuis": cifs, "per_company_per_day": 1, "days": 10})
        await h.admin("faults", {"family": "efactura", "latency_ms": [30, 30]})
        await h.grant("acc", cifs)
        assert sorted(await h.sync.tick()) == sorted(cifs)  # both claimed: one slot plus one listing ahead
        await h.sync.wait_idle()
        ledger = await h.ledger()
        rows = {c: [r for (cc, _), r in ledger.items() if cc == c] for c in cifs}
        assert all(rows[c] and all(r["state"] == "archived" for r in rows[c]) for c in cifs)
        first, second = sorted(cifs, key=lambda c: min(r["archived_at"] for r in rows[c]))
        first_done = max(r["archived_at"] for r in rows[first])
        assert max(r["first_seen_at"] for r in rows[second]) < first_done  # listed while the first downloaded
        assert min(r["archived_at"] for r in rows[second]) >= first_done  # downloaded after it, in the freed slot
