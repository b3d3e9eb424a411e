"""Who may act for a company, against the real PostgreSQL, Kafka and MinIO and the in-process emulator: an
unverified member sees nothing that came from ANAF and cannot file (nothing stored, nothing uploaded); a
connection whose certificate has rights on a CIF never serves it unless portfolio entitles it (no ANAF call for
that CIF at the emulator); the entitled connection is chosen by rank and the filing one must be allowed to file;
a company whose entitlements are gone stops syncing and its health says why, without other tenants' connection
ids; a firm's user files for a client only when the client allowed it."""
from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
from anaf_emulator import create_app as create_emulator
from efactura_kit import Harness, company_cifs, efactura_settings, new_emulator, scenario
from spvhub_common.events.auth import ReauthorizationRequired
from spvhub_devtools.testtokens import TokenMinter
from spvhub_efactura.adapters.orm import outbox, submissions
from spvhub_efactura.handlers import SyncPaused, on_reauthorization_required
from sqlalchemy import func, select
from submissions_kit import grant_access, invoice_xml

API = "/api/efactura"
XML = {"Content-Type": "application/xml"}
LIST_CALLS = ("listaMesajeFactura", "listaMesajePaginatieFactura")


async def _count(h: Harness, table: Any) -> int:
    async with h.runtime.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(table))).scalar() or 0)


async def _calls(h: Harness, cif: str) -> dict[str, int]:
    counters = await h.admin("counters", method="GET")
    return dict(counters["cui"].get(cif, {}))


def _code(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


async def test_unverified_member_sees_nothing_and_an_unentitled_connection_is_never_used(
        fresh_database: str, topic_prefix: str, minio_up: None, kafka_up: str) -> None:
    emulator = new_emulator(3)
    own, covered, buyer = company_cifs(3)  # the certificate "acc" has SPV rights on all three
    settings = efactura_settings(fresh_database, topic_prefix)
    async with Harness(settings, emulator) as h:
        await h.admin("invoices/generate", {"cuis": [own, covered], "per_company_per_day": 1, "days": 4})
        # "acc" is the holder's (own) connection; portfolio entitles it for `own` only
        await h.grant("acc", [own], holder=own)
        await h.sync_until_settled()
        for c in (covered, buyer):
            await h.sync.request_sync(c)  # unknown companies: nothing to request
        await h.sync.tick()
        await h.sync.wait_idle()
        served = await _calls(h, own)
        assert any(served.get(k) for k in LIST_CALLS) and served.get("descarcare")
        assert await _calls(h, covered) == {}, "a connection served a CIF it is not entitled for"
        assert {k[0] for k in await h.ledger()} == {own}

        minter = TokenMinter()
        h.app.state.jwks = minter.verifier()
        await grant_access(h.runtime, "alice", [own])  # verified owner (may file)
        # mallory registered the CIF of `own` (and of `covered`, which another tenant's certificate covers)
        await grant_access(h.runtime, "mallory", [own, covered], verified=False)
        alice, mallory = minter.headers("alice"), minter.headers("mallory")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app), base_url="http://efactura",
                                     timeout=60) as api:
            items = (await api.get(f"{API}/invoices", headers=alice, params={"limit": 500})).json()["items"]
            inv = next(i for i in items if i["document_type"] in ("invoice", "credit_note"))
            received = next((i for i in items if i["direction"] == "received" and i["upload_index"]), inv)
            r = await api.post(f"{API}/companies/{own}/submissions", content=invoice_xml(own, buyer, "ALICE-1"),
                               headers={**alice, **XML})
            assert r.status_code == 202, r.text
            sid = r.json()["id"]

            before = {"subs": await _count(h, submissions), "outbox": await _count(h, outbox),
                      "uploads": (await _calls(h, own)).get("upload", 0)}
            for cif in (own, covered):
                forbidden = [
                    api.get(f"{API}/invoices", headers=mallory, params={"cif": cif}),
                    api.get(f"{API}/invoices-export.zip", headers=mallory, params={"cif": cif}),
                    api.get(f"{API}/companies/{cif}/sync", headers=mallory),
                    api.post(f"{API}/companies/{cif}/sync", headers=mallory),
                    api.put(f"{API}/companies/{cif}/sync-settings", headers=mallory, json={"interval_minutes": 30}),
                    api.get(f"{API}/companies/{cif}/messages", headers=mallory),
                    api.post(f"{API}/companies/{cif}/reprocess", headers=mallory),
                    api.get(f"{API}/companies/{cif}/submissions", headers=mallory),
                    api.post(f"{API}/companies/{cif}/submissions", headers={**mallory, **XML},
                             content=invoice_xml(cif, buyer, "MALLORY-1")),
                ]
                for call in forbidden:
                    r = await call
                    assert _code(r) == (403, "company_not_verified"), (r.request.url, r.text)
                    assert "verificat" in r.json()["error"]["message"]  # Romanian by default
            r = await api.get(f"{API}/invoices", headers={**mallory, "Accept-Language": "en"}, params={"cif": own})
            assert "not verified" in r.json()["error"]["message"]
            # lists without a CIF: only verified companies
            assert (await api.get(f"{API}/invoices", headers=mallory)).json()["items"] == []
            assert (await api.get(f"{API}/sync", headers=mallory)).json()["items"] == []
            # objects by id: as if they did not exist
            for path in (f"/invoices/{inv['id']}", f"/invoices/{inv['id']}/xml", f"/invoices/{inv['id']}/zip",
                         f"/invoices/{inv['id']}/pdf", f"/submissions/{sid}", f"/submissions/{sid}/xml"):
                r = await api.get(API + path, headers=mallory)
                assert r.status_code == 404, (path, r.text)
            r = await api.post(f"{API}/invoices/{received['id']}/buyer-messages", headers=mallory,
                               json={"message": "Nu recunoastem factura"})
            assert r.status_code == 404, r.text
            # no side effect: no submission, no blob, no event, no upload
            assert await _count(h, submissions) == before["subs"]
            assert await _count(h, outbox) == before["outbox"]
            assert (await _calls(h, own)).get("upload", 0) == before["uploads"]
            for cif in (own, covered):
                sha = hashlib.sha256(invoice_xml(cif, buyer, "MALLORY-1")).hexdigest()
                assert await h.deps.blobs.stat(f"efactura/{cif}/submissions/xml/{sha}.xml") is None
            assert await _calls(h, covered) == {}

            # the verified owner: the health tells whose authorization syncs, never connection ids
            st = (await api.get(f"{API}/companies/{own}/sync", headers=alice)).json()
            assert st["status"] == "active" and st["stop_reason"] is None
            assert st["synced_through"] == {"kind": "own", "firm_cif": None, "active": True, "may_file": True}
            assert "connections" not in st and '"acc"' not in json.dumps(st)


def _two_certificates(n: int) -> dict[str, Any]:
    """The firm's certificate "acc" covers every company; the client also has its own, "own-client"."""
    sc = scenario(n)
    client = company_cifs(n)[1]
    sc["certificates"].append({"id": "own-client", "name": "IONESCU ANA", "cnp": "2800101123456",
                               "serial": "34:00:00:00:00:00:00:00:00:00:00:00:00:00:00:02", "rights": [client]})
    return sc


async def test_entitlements_choose_the_connection_filing_needs_permission_and_removal_stops_the_sync(
        fresh_database: str, topic_prefix: str, minio_up: None, kafka_up: str) -> None:
    emulator = create_emulator(_two_certificates(3), admin=True)
    firm, client, buyer = company_cifs(3)
    settings = efactura_settings(fresh_database, topic_prefix)
    async with Harness(settings, emulator) as h:
        await h.admin("invoices/generate", {"cuis": [client], "per_company_per_day": 1, "days": 3})
        # the firm's connection serves its client (active collaboration) but may not file for it
        await h.entitle(client, ("acc", firm, False))
        await h.sync_until_settled()
        assert any(k[0] == client for k in await h.ledger())
        assert await h.sync.connection_for(client) == "acc"
        try:
            await h.sync.connection_for(client, filing=True)
            raise AssertionError("a connection that may not file was chosen to file")
        except SyncPaused as e:
            assert e.code == "no_filing_connection"

        minter = TokenMinter()
        h.app.state.jwks = minter.verifier()
        await grant_access(h.runtime, "fay", [client], role="accountant", via_firm_cif=firm, can_file=False)
        await grant_access(h.runtime, "cora", [client])  # the client's verified owner
        fay, cora = minter.headers("fay"), minter.headers("cora")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app), base_url="http://efactura",
                                     timeout=60) as api:
            st = (await api.get(f"{API}/companies/{client}/sync", headers=fay)).json()
            assert st["status"] == "active"
            assert st["synced_through"] == {"kind": "accounting_firm", "firm_cif": firm, "active": True,
                                            "may_file": False}
            assert '"acc"' not in json.dumps(st)
            # the firm's user reads the client, but may not file nor send buyer messages for it
            items = (await api.get(f"{API}/invoices", headers=fay, params={"cif": client})).json()["items"]
            assert items
            received = next(i for i in items if i["direction"] == "received" and i["upload_index"])
            before_subs, before_outbox = await _count(h, submissions), await _count(h, outbox)
            r = await api.post(f"{API}/companies/{client}/submissions", headers={**fay, **XML},
                               content=invoice_xml(client, buyer, "FAY-1"))
            assert _code(r) == (403, "filing_not_allowed"), r.text
            r = await api.post(f"{API}/invoices/{received['id']}/buyer-messages", headers=fay,
                               json={"message": "Factura nu corespunde"})
            assert _code(r) == (403, "filing_not_allowed"), r.text
            r = await api.put(f"{API}/companies/{client}/sync-settings", headers=fay, json={"interval_minutes": 30})
            assert _code(r) == (403, "insufficient_role"), r.text
            assert (await _count(h, submissions), await _count(h, outbox)) == (before_subs, before_outbox)
            assert (await _calls(h, client)).get("upload", 0) == 0
            # the client's owner may file, but no entitled connection may: refused at once, never stored, never
            # uploaded through the firm's connection
            r = await api.post(f"{API}/companies/{client}/submissions", headers={**cora, **XML},
                               content=invoice_xml(client, buyer, "CORA-1"))
            assert _code(r) == (409, "no_filing_connection"), r.text
            assert (await _count(h, submissions), await _count(h, outbox)) == (before_subs, before_outbox)
            assert (await _calls(h, client)).get("upload", 0) == 0

            # the client allows filing: the firm's user files through the firm's connection
            await h.entitle(client, ("acc", firm, True))
            await grant_access(h.runtime, "fay", [client], role="accountant", via_firm_cif=firm, can_file=True)
            r = await api.post(f"{API}/companies/{client}/submissions", headers={**fay, **XML},
                               content=invoice_xml(client, buyer, "FAY-2"))
            assert r.status_code == 202 and r.json()["state"] == "processing" and r.json()["anaf_index"], r.text
            assert (await _calls(h, client)).get("upload", 0) == 1

            # the client authorizes its own connection, ranked first: it is used; paused, the next one is
            await h.entitle(client, ("own-client", client, True), ("acc", firm, True))
            assert await h.sync.connection_for(client) == "own-client"
            async with h.runtime.uow() as uow:
                await on_reauthorization_required(ReauthorizationRequired(
                    connection_id="own-client", company_cif=client, user_id="cora", reason="unknown", message="x"),
                    None, uow, None)
                await uow.commit()
            assert await h.sync.connection_for(client) == "acc"
            assert await h.sync.connection_for(client, filing=True) == "acc"
            st = (await api.get(f"{API}/companies/{client}/sync", headers=cora)).json()
            assert st["synced_through"]["kind"] == "accounting_firm" and st["status"] == "active"

            # the collaboration ends and the own connection stays paused: nothing may act for the client
            await h.entitle(client, ("own-client", client, True))
            st = (await api.get(f"{API}/companies/{client}/sync", headers=cora)).json()
            assert (st["status"], st["stop_reason"]) == ("paused", "reauthorization_required")
            await h.entitle(client)
            st = (await api.get(f"{API}/companies/{client}/sync", headers=cora)).json()
            assert (st["status"], st["stop_reason"], st["synced_through"]) == ("stopped", "no_entitled_connection",
                                                                               None)
            r = await api.post(f"{API}/companies/{client}/sync", headers=cora)
            assert _code(r) == (409, "no_entitled_connection"), r.text
            # the archive stays readable to the client's verified people
            assert (await api.get(f"{API}/invoices", headers=cora, params={"cif": client})).json()["items"]
            calls = await _calls(h, client)
            await h.sync.request_sync(client)
            assert await h.sync.tick() == []
            await h.sync.wait_idle()
            # the pending submission is not filed through any connection either
            await h.app.state.deps.submissions.tick()
            assert await _calls(h, client) == calls
