"""HTTP API: scoping by the access read model, list paging/filters, detail, XML/PDF/ZIP, streamed export, sync
status and trigger; a hostile ZIP is archived, flagged and never breaks the sync."""
from __future__ import annotations

import io
import zipfile

import httpx
from efactura_kit import Harness, company_cifs, efactura_settings, new_emulator
from spvhub_common.access import apply_access_changed
from spvhub_common.events.portfolio import AccessChanged
from spvhub_devtools.testtokens import TokenMinter
from spvhub_efactura.adapters.orm import access_grants


async def test_api_end_to_end(fresh_database: str, topic_prefix: str, minio_up: None, kafka_up: str) -> None:
    emulator = new_emulator(3)
    settings = efactura_settings(fresh_database, topic_prefix)
    cifs = company_cifs(3)
    async with Harness(settings, emulator) as h:
        await h.admin("invoices/generate", {"cuis": cifs[:2], "per_company_per_day": 2, "days": 10})
        # one hostile ZIP among the real ones
        target = (await h.emulator_messages(cifs[0]))[0]["id"]
        real_download = h.sync.anaf.download

        async def download(token: str, message_id: str) -> bytes:
            if message_id == target:
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                    zf.writestr(f"{message_id}.xml", b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>')
                return buf.getvalue()
            return await real_download(token, message_id)
        h.sync.anaf.download = download  # type: ignore[method-assign]
        await h.grant("acc", cifs)
        await h.sync_until_settled()
        ledger = await h.ledger()
        assert ledger[(cifs[0], target)]["state"] == "archived"
        assert ledger[(cifs[0], target)]["parse_status"] == "hostile"
        assert ledger[(cifs[0], target)]["needs_reprocess"] is True

        minter = TokenMinter()
        h.app.state.jwks = minter.verifier()
        async with h.runtime.uow() as uow:
            for c in cifs[:1]:
                await apply_access_changed(uow.session, access_grants,
                                           AccessChanged(cif=c, user_id="alice", role="owner", granted=True))
            await apply_access_changed(uow.session, access_grants,
                                       AccessChanged(cif=cifs[1], user_id="bob", role="owner", granted=True))
            await uow.commit()
        alice, bob = minter.headers("alice"), minter.headers("bob")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app), base_url="http://efactura") as api:
            assert (await api.get("/api/efactura/invoices")).status_code == 401
            r = await api.get("/api/efactura/invoices", headers=alice, params={"limit": 5})
            assert r.status_code == 200, r.text
            page = r.json()
            assert all(i["cif"] == cifs[0] for i in page["items"]) and len(page["items"]) == 5
            dates = [i["listed_at"] for i in page["items"]]
            assert dates == sorted(dates, reverse=True)
            # walk all pages: no duplicates, exactly the company's rows
            seen, cursor = [], None
            while True:
                params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
                p = (await api.get("/api/efactura/invoices", headers=alice, params=params)).json()
                seen += [i["id"] for i in p["items"]]
                cursor = p["next_cursor"]
                if not cursor:
                    break
            assert len(seen) == len(set(seen))
            archived_docs = [k for k, v in ledger.items() if k[0] == cifs[0] and v["parse_status"] == "ok"]
            assert len(seen) == len(archived_docs)
            # scoping
            r = await api.get("/api/efactura/invoices", headers=alice, params={"cif": cifs[1]})
            assert r.status_code == 403 and r.json()["error"]["code"] == "no_access_to_company"
            bob_ids = {i["id"] for i in (await api.get("/api/efactura/invoices", headers=bob,
                                                       params={"limit": 500})).json()["items"]}
            assert bob_ids and not bob_ids & set(seen)
            assert (await api.get(f"/api/efactura/invoices/{next(iter(bob_ids))}", headers=alice)).status_code == 404
            # filters
            inv = next(i for i in page["items"] if i["document_type"] in ("invoice", "credit_note"))
            for params in ({"number": inv["number"]}, {"partner": inv["partner_cif"]},
                           {"direction": inv["direction"]}, {"date_from": inv["issue_date"],
                                                             "date_to": inv["issue_date"]},
                           {"amount_min": inv["total_amount"], "amount_max": inv["total_amount"]},
                           {"type": inv["document_type"]}, {"partner": (inv["partner_name"] or "")[3:12]}):
                items = (await api.get("/api/efactura/invoices", headers=alice,
                                       params={"limit": 500, **params})).json()["items"]
                assert inv["id"] in {i["id"] for i in items}, params
            # detail and downloads
            d = (await api.get(f"/api/efactura/invoices/{inv['id']}", headers=alice)).json()
            assert d["archive"]["signature_status"] == "valid" and d["vat_breakdown"]
            assert {k: d[k] for k in inv} == inv  # the detail is the list's item and more
            # the ledger's instants keep the text the answer always had (isoformat, not pydantic's "Z")
            assert d["archive"]["archived_at"].endswith("+00:00") and d["archive"]["zip_key"]
            x = await api.get(f"/api/efactura/invoices/{inv['id']}/xml", headers=alice)
            assert x.status_code == 200 and inv["number"].encode() in x.content
            z = await api.get(f"/api/efactura/invoices/{inv['id']}/zip", headers=alice)
            names = zipfile.ZipFile(io.BytesIO(z.content)).namelist()
            assert any(n.startswith("semnatura_") for n in names)
            pdf = await api.get(f"/api/efactura/invoices/{inv['id']}/pdf", headers=alice)
            assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
            r = await api.get(f"/api/efactura/invoices/{inv['id']}/pdf", headers=alice, params={"source": "anaf"})
            assert r.status_code == 409 and r.json()["error"]["code"] == "anaf_pdf_disabled"
            h.deps.settings.anaf_transform_pdf = True
            r = await api.get(f"/api/efactura/invoices/{inv['id']}/pdf", headers=alice, params={"source": "anaf"})
            assert r.status_code == 200 and r.content.startswith(b"%PDF"), r.text
            # streamed bulk export
            ex = await api.get("/api/efactura/invoices-export.zip", headers=alice,
                               params={"include": "xml,zip,pdf", "type": "invoice"})
            assert ex.status_code == 200
            zf = zipfile.ZipFile(io.BytesIO(ex.content))
            assert zf.testzip() is None
            n_inv = len((await api.get("/api/efactura/invoices", headers=alice,
                                       params={"type": "invoice", "limit": 500})).json()["items"])
            assert len([n for n in zf.namelist() if n.endswith(".xml")]) == n_inv
            assert len([n for n in zf.namelist() if n.endswith(".pdf")]) == n_inv
            # sync status and trigger
            st = (await api.get(f"/api/efactura/companies/{cifs[0]}/sync", headers=alice)).json()
            assert st["status"] == "active" and st["last_success_at"] and st["messages"]["pending"] == 0
            assert st["first_sync"]["reaches_back_days"] == 60 and st["messages"]["flagged"] == 1
            assert st["purge_countdown"] is None
            r = await api.post(f"/api/efactura/companies/{cifs[0]}/sync", headers=alice)
            assert r.status_code == 202
            assert (await api.post(f"/api/efactura/companies/{cifs[1]}/sync", headers=alice)).status_code == 403
            r = await api.put(f"/api/efactura/companies/{cifs[0]}/sync-settings", headers=alice,
                              json={"interval_minutes": 30})
            assert r.status_code == 200
            ov = (await api.get("/api/efactura/sync", headers=alice)).json()["items"]
            assert [i["cif"] for i in ov] == [cifs[0]] and ov[0]["interval_seconds"] == 1800
            metrics = (await api.get("/metrics")).text
            assert f'efactura_sync_last_success_timestamp{{cif="{cifs[0]}"}}' in metrics
            led = (await api.get(f"/api/efactura/companies/{cifs[0]}/messages", headers=alice,
                                 params={"state": "archived"})).json()["items"]
            assert len(led) == len([k for k in ledger if k[0] == cifs[0]])
            assert next(m for m in led if m["message_id"] == target)["needs_reprocess"] is True
            r = await api.post(f"/api/efactura/companies/{cifs[0]}/reprocess", headers=alice)
            assert r.status_code == 200 and set(r.json()) == {"cif", "reprocessed"} and r.json()["cif"] == cifs[0]
            assert isinstance(r.json()["reprocessed"], int)
