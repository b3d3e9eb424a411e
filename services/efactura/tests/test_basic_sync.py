"""A small end-to-end sync against the in-process emulator and the real PostgreSQL/MinIO."""
from __future__ import annotations

from efactura_kit import Harness, company_cifs, efactura_settings, new_emulator


async def test_first_sync_archives_every_listed_message(fresh_database: str, topic_prefix: str, minio_up: None,
                                                        kafka_up: str) -> None:
    emulator = new_emulator(2)
    settings = efactura_settings(fresh_database, topic_prefix)
    cifs = company_cifs(2)
    async with Harness(settings, emulator) as h:
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
