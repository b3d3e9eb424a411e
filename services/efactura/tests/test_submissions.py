"""Submissions against the real PostgreSQL, Kafka and MinIO and the in-process emulator: checks before filing, one
upload for five concurrent requests, idempotency conflicts, accepted invoices linked to the sent list once, rejected
ones explained (RO + EN) with the error report in the inbox once, validation first, buyer messages and their cap."""
from __future__ import annotations

import asyncio

import httpx
from efactura_kit import Harness, company_cifs, efactura_settings, new_emulator
from spvhub_common.anaf.budget import BudgetKind
from spvhub_common.events import decode
from spvhub_devtools.testtokens import TokenMinter
from spvhub_efactura.adapters.orm import invoices, outbox, submissions
from sqlalchemy import func, select
from submissions_kit import drive, grant_access, invoice_xml

API = "/api/efactura"


async def _count(h: Harness, table) -> int:  # type: ignore[no-untyped-def]
    async with h.runtime.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(table))).scalar() or 0)


async def _events(h: Harness, topic: str) -> list:  # type: ignore[type-arg]
    async with h.runtime.sessions() as s:
        rows = (await s.execute(select(outbox.c.payload).where(outbox.c.topic == topic))).scalars().all()
    return [decode(p)[1] for p in rows]


async def _uploads(h: Harness, cif: str) -> int:
    counters = await h.admin("counters", method="GET")
    return int(counters["cui"].get(cif, {}).get("upload", 0))


async def test_submissions_end_to_end(fresh_database: str, topic_prefix: str, minio_up: None, kafka_up: str) -> None:
    emulator = new_emulator(3)
    cifs = company_cifs(3)
    seller, buyer, other = cifs
    settings = efactura_settings(fresh_database, topic_prefix)
    async with Harness(settings, emulator) as h:
        await h.grant("acc", cifs)
        minter = TokenMinter()
        h.app.state.jwks = minter.verifier()
        await grant_access(h.runtime, "alice", [seller])
        await grant_access(h.runtime, "bob", [other])
        alice = minter.headers("alice")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app), base_url="http://efactura",
                                     timeout=60) as api:
            url = f"{API}/companies/{seller}/submissions"
            xml = invoice_xml(seller, buyer, "SPV-0001")
            # scoping
            r = await api.post(f"{API}/companies/{seller}/submissions", content=xml,
                               headers={**minter.headers("bob"), "Content-Type": "application/xml"})
            assert r.status_code == 403
            # checks before filing: clear 4xx, nothing stored
            bad = {
                b"<Invoice><unclosed></Invoice>": (400, "xml_malformed"),
                b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>': (400, "xml_malformed"),
                b'<a xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"/>': (422, "xml_not_ubl_invoice"),
                b"<a>" + b" " * (10 * 1024 * 1024) + b"</a>": (413, "xml_too_large"),
            }
            for body, (status, code) in bad.items():
                r = await api.post(url, content=body, headers={**alice, "Content-Type": "application/xml"})
                assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text[:300]
            r = await api.post(url, content=invoice_xml(other, buyer), headers={**alice, "Content-Type": "text/xml"})
            assert (r.status_code, r.json()["error"]["code"]) == (422, "seller_mismatch")
            assert await _count(h, submissions) == 0 and await _uploads(h, seller) == 0

            # five concurrent submissions of the same invoice (derived key): one upload, one submission
            rs = await asyncio.gather(*(api.post(url, content=xml, headers={**alice, "Content-Type": "application/xml"})
                                        for _ in range(5)))
            assert sorted(r.status_code for r in rs) == [200, 200, 200, 200, 202], [r.text for r in rs]
            ids = {r.json()["id"] for r in rs}
            assert len(ids) == 1
            sid = ids.pop()
            assert await _uploads(h, seller) == 1
            first = next(r.json() for r in rs if r.status_code == 202)
            assert first["key_source"] == "derived" and first["anaf_index"] and first["state"] == "processing"
            # again (a retry): the same submission, no upload
            r = await api.post(url, content=xml, headers={**alice, "Content-Type": "application/xml"})
            assert r.status_code == 200 and r.json()["id"] == sid
            # same key, different XML
            r = await api.post(url, content=invoice_xml(seller, buyer, "SPV-0001", seller_county="BV"),
                               headers={**alice, "Content-Type": "application/xml"})
            assert r.status_code == 409 and r.json()["error"]["code"] == "idempotency_key_reused"
            assert sid in r.json()["error"]["message"]
            # multipart with a client key
            r = await api.post(url, files={"file": ("f.xml", invoice_xml(seller, buyer, "SPV-0002"), "text/xml")},
                               headers={**alice, "Idempotency-Key": "client-key-2"})
            assert r.status_code == 202 and r.json()["key_source"] == "client", r.text
            sid2 = r.json()["id"]
            assert await _uploads(h, seller) == 2

            row = await drive(h, sid, ("accepted",))
            assert row.anaf_state == "ok" and row.sent_invoice_id
            await drive(h, sid2, ("accepted",))
            detail = (await api.get(f"{API}/submissions/{sid}", headers=alice)).json()
            assert detail["links"]["sent_invoice"] == f"{API}/invoices/{row.sent_invoice_id}"
            assert (await api.get(detail["links"]["anaf_response"], headers=alice)).text.count("index_incarcare")
            assert (await api.get(detail["links"]["xml"], headers=alice)).content == xml

            # rejected by ANAF's processing (county code, CustomizationID): explained, error report once
            nok_xml = invoice_xml(seller, buyer, "SPV-0003", seller_county="ZZ", customization_ok=False)
            # (offline validation would refuse it before ANAF: turned off to exercise ANAF's own verdict)
            r = await api.post(url, content=nok_xml, params={"offline_validation": "false"},
                               headers={**alice, "Content-Type": "application/xml"})
            assert r.status_code == 202
            nok_id = r.json()["id"]
            row = await drive(h, nok_id, ("rejected",))
            assert row.error_stage == "processing"
            by_code = {e["code"]: e for e in row.errors or []}
            assert {"BR-RO-001", "BR-RO-110"} <= set(by_code), row.errors
            assert by_code["BR-RO-110"]["field"] == "BT-39"
            assert "ISO 3166-2:RO" in by_code["BR-RO-110"]["explanation_en"]
            assert "Județul" in by_code["BR-RO-110"]["explanation_ro"]
            detail = (await api.get(f"{API}/submissions/{nok_id}", headers=alice)).json()
            assert detail["state"] == "rejected" and len(detail["errors"]) == 2
            assert b"mesajEroriFactuta" in (await api.get(detail["links"]["error_report"], headers=alice)).content

            # validation first: ANAF's validare refuses, nothing is uploaded
            before = await _uploads(h, seller)
            r = await api.post(url, params={"validate_first": "true", "offline_validation": "false"},
                               content=invoice_xml(seller, buyer, "SPV-0004", seller_county="ZZ"),
                               headers={**alice, "Content-Type": "application/xml"})
            assert r.status_code == 202 and r.json()["state"] == "rejected", r.text
            assert r.json()["error_stage"] == "validation" and r.json()["errors"][0]["code"] == "BR-RO-110"
            assert await _uploads(h, seller) == before

            # the inbox sync sees the same messages: nothing duplicated, links kept
            await h.sync_until_settled([seller])
            sent = (await api.get(f"{API}/invoices", headers=alice, params={"direction": "sent", "limit": 500})).json()
            by_index = {}
            for i in sent["items"]:
                by_index.setdefault(i["upload_index"], []).append(i)
            assert [i["document_type"] for i in by_index[first["anaf_index"]]] == ["invoice"]
            errs = [i for i in sent["items"] if i["document_type"] == "error_report"]
            assert len(errs) == 1 and errs[0]["upload_index"] == row.anaf_index
            async with h.runtime.sessions() as s:
                linked = dict((await s.execute(select(invoices.c.upload_index, invoices.c.submission_id).where(
                    invoices.c.submission_id.is_not(None)))).all())
            assert linked == {first["anaf_index"]: sid, row.anaf_index: nok_id,
                              (await api.get(f"{API}/submissions/{sid2}", headers=alice)).json()["anaf_index"]: sid2}
            listed = (await api.get(url, headers=alice)).json()["items"]
            assert {i["id"] for i in listed} >= {sid, sid2, nok_id} and all(i["cif"] == seller for i in listed)
            assert (await api.get(f"{API}/submissions/{sid}", headers=minter.headers("bob"))).status_code == 404

            # events: submitted, accepted, rejected (with codes and fields, no secrets)
            rejected = await _events(h, "efactura.invoice-rejected")
            assert {e.submission_id for e in rejected} == {nok_id, r.json()["id"]}
            ev = next(e for e in rejected if e.submission_id == nok_id)
            assert set(ev.error_codes) == {"BR-RO-001", "BR-RO-110"} and ev.submitted_by == "alice"
            # its error report says whose it is (the notifier then tells the sender once, by the rejection)
            reports = await _events(h, "efactura.invoice-error-received")
            assert [(e.upload_index, e.submission_id) for e in reports] == [(row.anaf_index, nok_id)]
            assert {e.submission_id for e in await _events(h, "efactura.invoice-accepted")} == {sid, sid2}
            assert len(await _events(h, "efactura.invoice-submitted")) == 3

            # buyer message (RASP) about a received invoice, and the daily cap
            await h.admin("invoices", {"seller": other, "buyer": seller, "kind": "invoice"})
            await h.admin("clock", {"advance_seconds": 120})
            await h.sync_until_settled([seller])
            received = (await api.get(f"{API}/invoices", headers=alice,
                                      params={"direction": "received", "type": "invoice"})).json()["items"]
            inv_id = received[0]["id"]
            r = await api.post(f"{API}/invoices/{inv_id}/buyer-messages", json={"message": "Cantitate gresita"},
                               headers=alice)
            assert r.status_code == 202 and r.json()["kind"] == "buyer_message" and r.json()["anaf_index"], r.text
            await drive(h, r.json()["id"], ("accepted",), linked=False)
            r2 = await api.post(f"{API}/invoices/{inv_id}/buyer-messages", json={"message": "Cantitate gresita"},
                                headers=alice)
            assert r2.status_code == 200 and r2.json()["id"] == r.json()["id"]
            sent_invoice = next(i for i in sent["items"] if i["document_type"] == "invoice")
            r = await api.post(f"{API}/invoices/{sent_invoice['id']}/buyer-messages", json={"message": "x"},
                               headers=alice)
            assert r.status_code == 409 and r.json()["error"]["code"] == "not_a_received_invoice"
            await h.budget.mark_exhausted(BudgetKind.EF_UPLOAD_RASP, seller)
            n = await _count(h, submissions)
            r = await api.post(f"{API}/invoices/{inv_id}/buyer-messages", json={"message": "Alt mesaj"}, headers=alice)
            assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exhausted", r.text
            assert r.json()["error"]["details"]["resets_at"] and int(r.headers["Retry-After"]) >= 1
            assert await _count(h, submissions) == n


async def test_filed_upload_whose_answer_was_lost_is_found_in_the_inbox_not_uploaded_again(
        fresh_database: str, topic_prefix: str, minio_up: None, kafka_up: str) -> None:
    emulator = new_emulator(2)
    seller, buyer = company_cifs(2)
    settings = efactura_settings(fresh_database, topic_prefix)
    async with Harness(settings, emulator) as h:
        await h.grant("acc", [seller, buyer])
        svc = h.app.state.deps.submissions
        real_upload = svc.anaf.upload

        async def filed_then_lost(*a, **kw):  # type: ignore[no-untyped-def]
            await real_upload(*a, **kw)
            raise TimeoutError("the answer never arrived")
        svc.anaf.upload = filed_then_lost
        minter = TokenMinter()
        h.app.state.jwks = minter.verifier()
        await grant_access(h.runtime, "alice", [seller])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app), base_url="http://efactura",
                                     timeout=60) as api:
            r = await api.post(f"{API}/companies/{seller}/submissions", content=invoice_xml(seller, buyer, "LOST-1"),
                               headers={**minter.headers("alice"), "Content-Type": "application/xml",
                                        "Idempotency-Key": "lost-1"})
            assert r.status_code == 202 and r.json()["state"] == "unknown", r.text
            svc.anaf.upload = real_upload
            await h.admin("clock", {"advance_seconds": 120})
            row = None
            for _ in range(40):  # the worker asks for a sync; the sync archives FACTURA TRIMISA; the index is adopted
                await svc.tick()
                await h.engine.tick()
                await h.engine.wait_idle()
                row = await svc.get(r.json()["id"])
                if row is not None and row.state == "accepted" and row.sent_invoice_id:
                    break
                await h.admin("clock", {"advance_seconds": 5})
            assert row and row.state == "accepted" and row.sent_invoice_id, row
            assert "found at ANAF" in (row.reconcile_note or "")
            assert await _uploads(h, seller) == 1
