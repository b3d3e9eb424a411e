"""Offline validation before filing, against the real PostgreSQL/Kafka/MinIO and the in-process emulator: an invalid
invoice is refused with its rule id (422 `invoice_invalid`) and nothing is stored, no blob written, no ANAF call made;
the validation endpoint answers in ANAF's validare shape without calling ANAF."""
from __future__ import annotations

import hashlib

import httpx
from efactura_kit import Harness, company_cifs, efactura_settings, new_emulator
from spvhub_devtools.testtokens import TokenMinter
from spvhub_efactura.adapters.orm import outbox, submissions
from sqlalchemy import func, select
from submissions_kit import grant_access, invoice_xml

API = "/api/efactura"


async def _count(h: Harness, table) -> int:  # type: ignore[no-untyped-def]
    async with h.runtime.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(table))).scalar() or 0)


async def _anaf_efactura_calls(h: Harness) -> int:
    counters = await h.admin("counters", method="GET")
    return sum(int(n) for path, n in counters["endpoints"].items() if "FCTEL" in path)


async def test_invalid_invoice_refused_offline_without_calling_anaf(fresh_database: str, topic_prefix: str,
                                                                    minio_up: None, kafka_up: str) -> None:
    emulator = new_emulator(3)
    seller, buyer, _ = company_cifs(3)
    async with Harness(efactura_settings(fresh_database, topic_prefix), emulator) as h:
        await h.grant("acc", [seller, buyer])
        minter = TokenMinter()
        h.app.state.jwks = minter.verifier()
        await grant_access(h.runtime, "alice", [seller])
        alice = {**minter.headers("alice"), "Content-Type": "application/xml"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app), base_url="http://efactura",
                                     timeout=60) as api:
            url = f"{API}/companies/{seller}/submissions"
            calls, outbox_rows = await _anaf_efactura_calls(h), await _count(h, outbox)
            bad = invoice_xml(seller, buyer, "SPV-0100", seller_county="ZZ")
            total = b'<cbc:TaxInclusiveAmount currencyID="RON">'
            bad = bad.replace(total, total + b"1", 1)
            r = await api.post(url, content=bad, headers=alice)
            assert r.status_code == 422, r.text
            err = r.json()["error"]
            assert err["code"] == "invoice_invalid" and {"BR-RO-110", "BR-CO-15"} <= set(err["details"]["rules"])
            assert "BR-RO-110" in err["message"] and err["details"]["stare"] == "nok"
            f = next(e for e in err["details"]["errors"] if e["code"] == "BR-RO-110")
            assert f["message"].startswith("E: validari globale  SCHEMATRON   eroare: [BR-RO-110]")
            assert f["business_term"] == "BT-39" and "ISO 3166-2:RO" in f["explanation_en"]
            # the VAT rate of the kit's invoice (19 % in March 2026) is pointed out, never blocking
            assert [w["code"] for w in err["details"]["warnings"]] == ["SPVHUB-VAT-01"]
            r = await api.post(url, content=bad, headers={**alice, "Accept-Language": "ro"})
            assert r.json()["error"]["message"].startswith("Documentul nu respectă regulile RO e-Factura")
            # no side effect: no row, no event, no ANAF call (neither upload nor validare)
            assert await _count(h, submissions) == 0 and await _count(h, outbox) == outbox_rows
            assert await _anaf_efactura_calls(h) == calls
            blobs = h.app.state.deps.submissions.blobs
            assert not await blobs.exists(f"efactura/{seller}/submissions/xml/{hashlib.sha256(bad).hexdigest()}.xml")

            # the standalone check: ANAF's validare shape, no ANAF call
            r = await api.post(f"{API}/validation", content=bad, headers=alice)
            assert r.status_code == 200 and r.json()["stare"] == "nok"
            assert any("[BR-CO-15]" in m["message"] for m in r.json()["Messages"])
            good = invoice_xml(seller, buyer, "SPV-0101")
            r = await api.post(f"{API}/validation", content=good, headers=alice)
            assert r.json()["stare"] == "ok" and "Messages" not in r.json()
            assert await _anaf_efactura_calls(h) == calls
            assert (await api.post(f"{API}/validation", content=good)).status_code == 401

            # a valid one is filed as before (the offline check passes, ANAF is called once)
            r = await api.post(url, content=good, headers=alice)
            assert r.status_code == 202, r.text
            # the kit's 19 % rate on a March 2026 invoice: pointed out, filed all the same
            assert [w["code"] for w in r.json()["warnings"]] == ["SPVHUB-VAT-01"]
            assert "21 %" in r.json()["warnings"][0]["explanation_en"]
            assert await _anaf_efactura_calls(h) > calls
