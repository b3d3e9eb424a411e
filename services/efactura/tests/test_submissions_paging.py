"""The submissions list pages like every other list: `limit`, an opaque `cursor`, `next_cursor` until the last page;
a cursor it did not give is refused with 422 invalid_cursor and changes nothing. The older `before=` bound is still
accepted for one release. Against the real PostgreSQL, Kafka and MinIO and the in-process emulator."""
from __future__ import annotations

from datetime import datetime

import httpx
from efactura_kit import Harness, company_cifs, efactura_settings, new_emulator
from spvhub_common.paging import encode_cursor
from spvhub_devtools.testtokens import TokenMinter
from spvhub_efactura.adapters.orm import submissions
from sqlalchemy import func, select
from submissions_kit import grant_access, invoice_xml

API = "/api/efactura"
XML = {"Content-Type": "application/xml"}


async def _stored(h: Harness) -> list[tuple[str, str, object]]:
    async with h.runtime.sessions() as s:
        return [tuple(r) for r in (await s.execute(
            select(submissions.c.id, submissions.c.state, submissions.c.updated_at).order_by(submissions.c.id)))]


async def _uploads(h: Harness, cif: str) -> int:
    counters = await h.admin("counters", method="GET")
    return int(counters["cui"].get(cif, {}).get("upload", 0))


async def test_submissions_page_by_cursor(fresh_database: str, topic_prefix: str, minio_up: None,
                                          kafka_up: str) -> None:
    seller, buyer = company_cifs(2)
    async with Harness(efactura_settings(fresh_database, topic_prefix), new_emulator(2)) as h:
        await h.grant("acc", [seller, buyer])
        minter = TokenMinter()
        h.app.state.jwks = minter.verifier()
        await grant_access(h.runtime, "alice", [seller])
        alice = minter.headers("alice")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app), base_url="http://efactura",
                                     timeout=60) as api:
            url = f"{API}/companies/{seller}/submissions"
            for n in range(5):
                r = await api.post(url, content=invoice_xml(seller, buyer, f"PAG-{n}"), headers={**alice, **XML})
                assert r.status_code == 202, r.text[:300]

            # walk the pages: two at a time, following next_cursor until there is none
            seen: list[dict] = []  # type: ignore[type-arg]
            cursor = None
            pages = 0
            while True:
                r = await api.get(url, params={"limit": 2, **({"cursor": cursor} if cursor else {})}, headers=alice)
                assert r.status_code == 200, r.text[:300]
                page = r.json()
                assert set(page) >= {"items", "next_cursor", "total"} and len(page["items"]) <= 2
                seen += page["items"]
                pages += 1
                cursor = page["next_cursor"]
                if not cursor:
                    assert page["next_before"] is None
                    break
                assert page["next_before"] == page["items"][-1]["created_at"].replace("Z", "+00:00")
                assert pages < 10, "the cursor never ends"
            assert pages == 3
            assert sorted(i["number"] for i in seen) == [f"PAG-{n}" for n in range(5)]
            assert len({i["id"] for i in seen}) == 5, "a page repeated a submission"
            keys = [(i["created_at"], i["id"]) for i in seen]
            assert keys == sorted(keys, reverse=True), "newest first"

            # a page exactly as long as what is left is the last one: no cursor to an empty page
            r = await api.get(url, params={"limit": 5}, headers=alice)
            assert len(r.json()["items"]) == 5 and r.json()["next_cursor"] is None

            # the older bound still works for one release
            bound = datetime.fromisoformat(seen[1]["created_at"])
            r = await api.get(url, params={"before": seen[1]["created_at"]}, headers=alice)
            assert r.status_code == 200
            assert [i["id"] for i in r.json()["items"]] == [
                i["id"] for i in seen if datetime.fromisoformat(i["created_at"]) < bound]

            # cursors it did not give: 422 invalid_cursor (Romanian first), nothing stored or sent
            stored, uploads = await _stored(h), await _uploads(h, seller)
            at, sid = seen[1]["created_at"], seen[1]["id"]
            for bad in ("not a cursor!", encode_cursor(at), encode_cursor("yesterday", sid),
                        encode_cursor("2026-03-09T10:00:00", sid), encode_cursor(at, 7), encode_cursor([1], "x")):
                r = await api.get(url, params={"cursor": bad}, headers=alice)
                assert r.status_code == 422, (bad, r.text[:300])
                error = r.json()["error"]
                assert error["code"] == "invalid_cursor" and error["message"].startswith("Cursorul"), error
            assert await _stored(h) == stored and await _uploads(h, seller) == uploads
            async with h.runtime.sessions() as s:
                assert int((await s.execute(select(func.count()).select_from(submissions))).scalar() or 0) == 5

            # another company's list stays closed whatever the cursor
            r = await api.get(f"{API}/companies/{buyer}/submissions", params={"cursor": seen[0]["id"]}, headers=alice)
            assert r.status_code == 403
