"""ANAF behaviours no public source settles, each read both ways (emulator switches, anaf-api.md §11):

- §11.17: an upload answered "A aparut o eroare tehnica. Cod: 1814" may or may not have been filed. The submission
  becomes `unknown`, is reconciled against ANAF's lists, and is never resent blindly: a filed one is adopted (one
  upload at ANAF), an unfiled one is resent only after the lists showed nothing.
- §11.13: which party of a self-billed invoice ANAF lists as FACTURA TRIMISA is not settled; the parties are read
  from `detalii`, so the seller files it as a sale and the buyer as a purchase either way.
"""
from __future__ import annotations

import httpx
import pytest
from efactura_kit import Harness, company_cifs, efactura_settings, new_emulator
from spvhub_devtools.testtokens import TokenMinter
from spvhub_efactura.adapters.orm import invoices
from spvhub_efactura.submissions.repository import Submission
from sqlalchemy import select
from submissions_kit import grant_access, invoice_xml

API = "/api/efactura"


async def _uploads(h: Harness, cif: str) -> int:
    counters = await h.admin("counters", method="GET")
    return int(counters["cui"].get(cif, {}).get("upload", 0))


async def _settle(h: Harness, submission_id: str, rounds: int = 80, step: int = 5) -> Submission:
    svc = h.app.state.deps.submissions
    row: Submission | None = None
    for _ in range(rounds):
        await svc.tick()
        await h.engine.tick()
        await h.engine.wait_idle()
        row = await svc.get(submission_id)
        assert row is not None
        if row.state in ("accepted", "rejected") and (row.state != "accepted" or row.sent_invoice_id):
            return row
        await h.admin("clock", {"advance_seconds": step})
    raise AssertionError(f"submission did not settle: {row}")


@pytest.mark.parametrize("files", [True, False], ids=["filed", "not_filed"])
async def test_upload_answered_with_technical_error_1814_is_reconciled_before_any_resend(
        fresh_database: str, topic_prefix: str, minio_up: None, kafka_up: str, files: bool) -> None:
    emulator = new_emulator(2, upload_error_1814=1, upload_error_1814_files=files)
    seller, buyer = company_cifs(2)
    settings = efactura_settings(fresh_database, topic_prefix)
    # a short grace: the lists must cover the upload time plus this much before an unfiled upload is resent
    settings.submission_unknown_grace_seconds = 120
    settings.submission_unknown_check_seconds = 0.2
    async with Harness(settings, emulator) as h:
        await h.grant("acc", [seller, buyer])
        minter = TokenMinter()
        h.app.state.jwks = minter.verifier()
        await grant_access(h.runtime, "alice", [seller])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app), base_url="http://efactura",
                                     timeout=60) as api:
            r = await api.post(f"{API}/companies/{seller}/submissions", content=invoice_xml(seller, buyer, "T-1814"),
                               headers={**minter.headers("alice"), "Content-Type": "application/xml",
                                        "Idempotency-Key": "t-1814"})
            assert r.status_code == 202 and r.json()["state"] == "unknown", r.text
            assert "1814" in (r.json().get("reconcile_note") or await _note(h, r.json()["id"]))
            assert await _uploads(h, seller) == 1
            await h.admin("clock", {"advance_seconds": 60})
            row = await _settle(h, r.json()["id"])
        assert row.state == "accepted" and row.sent_invoice_id, row
        if files:
            assert "found at ANAF" in (row.reconcile_note or "")
            assert await _uploads(h, seller) == 1  # adopted, never sent again
        else:
            assert await _uploads(h, seller) == 2  # sent again only after the lists showed nothing
        sent = [m for m in await h.emulator_messages(seller) if m["tip"] == "FACTURA TRIMISA"]
        assert len(sent) == 1  # one invoice at ANAF either way


async def _note(h: Harness, submission_id: str) -> str:
    return str((await h.app.state.deps.submissions.get(submission_id)).reconcile_note or "")


@pytest.mark.parametrize("uploader_tip", ["sent", "received"])
async def test_self_billed_invoice_is_a_sale_for_the_seller_and_a_purchase_for_the_buyer(
        fresh_database: str, topic_prefix: str, minio_up: None, kafka_up: str, uploader_tip: str) -> None:
    emulator = new_emulator(2, self_billing_uploader_tip=uploader_tip)
    seller, buyer = company_cifs(2)
    settings = efactura_settings(fresh_database, topic_prefix)
    async with Harness(settings, emulator) as h:
        made = await h.admin("invoices", {"seller": seller, "buyer": buyer, "kind": "self_billing"})
        tips = {m["cif"]: m["tip"] for m in made["messages"]}
        assert tips[buyer] == ("FACTURA TRIMISA" if uploader_tip == "sent" else "FACTURA PRIMITA")
        await h.admin("clock", {"advance_seconds": 60})
        await h.grant("acc", [seller, buyer])
        await h.sync_until_settled([seller, buyer])
        async with h.runtime.sessions() as s:
            rows = (await s.execute(select(invoices.c.cif, invoices.c.direction, invoices.c.self_billing,
                                           invoices.c.partner_cif))).all()
        got = {r.cif: (r.direction, r.self_billing, r.partner_cif) for r in rows}
        assert got == {seller: ("sent", True, buyer), buyer: ("received", True, seller)}
