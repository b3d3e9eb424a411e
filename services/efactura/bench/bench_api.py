"""Benchmarks of the read API on the real stack (prints figures; not a test):
- p99 latency of the invoice list at 200,000 invoices (first pages, filters, deep keyset pages), over HTTP;
- peak memory growth of a streamed bulk ZIP export of 5,000 invoices (ZIP + XML each from MinIO).

    python services/efactura/bench/bench_api.py [--rows 200000] [--export 5000]
"""
from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import socket
import statistics
import sys
import time
import uuid
import zipfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from efactura_kit import MIGRATIONS, company_cifs, efactura_settings  # noqa: E402
from spvhub_common.access import apply_access_changed  # noqa: E402
from spvhub_common.anaf.budget import InMemoryBudget  # noqa: E402
from spvhub_common.db import drop_database, ensure_database  # noqa: E402
from spvhub_common.events.portfolio import AccessChanged  # noqa: E402
from spvhub_common.migrate import upgrade_async  # noqa: E402
from spvhub_devtools.testtokens import TokenMinter  # noqa: E402
from spvhub_efactura.adapters.orm import access_grants, invoices  # noqa: E402
from spvhub_efactura.bootstrap import build  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--export", type=int, default=5_000)
    ap.add_argument("--requests", type=int, default=600)
    args = ap.parse_args()
    db = f"bench_{uuid.uuid4().hex[:10]}"
    settings = efactura_settings(db, f"b{uuid.uuid4().hex[:8]}.", http_port=free_port())
    await ensure_database(settings, db)
    await upgrade_async(settings, MIGRATIONS)
    app, runtime = build(settings, tokens=None, budget=InMemoryBudget(), start_consumers=False, start_relay=False,
                         start_jobs=False)
    minter = TokenMinter()
    cifs = company_cifs(20)
    rng = random.Random(1)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.http_port, log_level="warning",
                                           access_log=False))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        app.state.jwks = minter.verifier()
        svc = app.state.deps
        # -- data ---------------------------------------------------------------------------------
        t0 = time.perf_counter()
        partners = [(str(10_000_000 + i), f"Partener {i} SRL") for i in range(2000)]
        base = datetime(2026, 3, 10, tzinfo=UTC)
        exp_cif = cifs[0]
        sample_xml = (b'<?xml version="1.0"?><Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">'
                      + b"<x>" + b"A" * 3000 + b"</x></Invoice>")
        batch: list[dict] = []
        async with runtime.uow() as uow:
            for c in cifs:
                await apply_access_changed(uow.session, access_grants,
                                           AccessChanged(cif=c, user_id="acct", role="accountant", granted=True))
            await uow.commit()
        for i in range(args.rows):
            cif = cifs[1 + i % 19] if i >= args.export else exp_cif
            p = rng.choice(partners)
            listed = base - timedelta(seconds=rng.randint(0, 59 * 86400))
            total = Decimal(rng.randint(100, 5_000_000)) / 100
            batch.append({"cif": cif, "message_id": str(3_000_000_000 + i),
                          "direction": rng.choice(["received", "sent"]),
                          "document_type": "invoice", "type_code": "380", "number": f"FCT-{i}",
                          "issue_date": listed.date(), "currency": "RON", "partner_cif": p[0], "partner_name": p[1],
                          "total_amount": total, "net_amount": total, "vat_amount": Decimal(0), "listed_at": listed,
                          "zip_key": f"efactura/{cif}/{3_000_000_000 + i}/{i}.zip",
                          "xml_key": f"efactura/{cif}/{3_000_000_000 + i}/{i}.xml"})
            if len(batch) == 5000:
                async with runtime.uow() as uow:
                    await uow.session.execute(invoices.insert(), batch)
                    await uow.commit()
                batch = []
        if batch:
            async with runtime.uow() as uow:
                await uow.session.execute(invoices.insert(), batch)
                await uow.commit()
        async with runtime.engine.begin() as conn:
            from sqlalchemy import text
            await conn.execute(text("ANALYZE invoices"))
        print(f"inserted {args.rows} invoices in {time.perf_counter() - t0:.0f}s")
        # blobs for the export set
        await svc.blobs.ensure_bucket()
        sem = asyncio.Semaphore(24)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("1.xml", sample_xml)
            zf.writestr("semnatura_1.xml", sample_xml)
        zip_bytes = buf.getvalue()

        async def put(i: int) -> None:
            async with sem:
                k = f"efactura/{exp_cif}/{3_000_000_000 + i}/{i}"
                await svc.blobs.put(k + ".zip", zip_bytes, "application/zip")
                await svc.blobs.put(k + ".xml", sample_xml, "application/xml")
        t0 = time.perf_counter()
        await asyncio.gather(*(put(i) for i in range(args.export)))
        print(f"stored {2 * args.export} blobs in {time.perf_counter() - t0:.0f}s")

        headers = minter.headers("acct")
        url = f"http://127.0.0.1:{settings.http_port}/api/efactura"
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            # -- list latency -------------------------------------------------------------------------
            lat: list[float] = []
            cursors: list[str] = []
            for i in range(args.requests):
                kind = i % 6
                params: dict[str, object] = {"limit": 50}
                if kind == 0:
                    pass  # all 20 companies, newest first
                elif kind == 1:
                    params["cif"] = rng.choice(cifs)
                elif kind == 2:
                    params.update(cif=rng.choice(cifs), partner=rng.choice(partners)[0])
                elif kind == 3:
                    d = date(2026, 1, 10) + timedelta(days=rng.randint(0, 50))
                    params.update(cif=rng.choice(cifs), date_from=d.isoformat(),
                                  date_to=(d + timedelta(days=7)).isoformat())
                elif kind == 4 and cursors:
                    params["cursor"] = rng.choice(cursors)
                else:
                    params.update(cif=rng.choice(cifs), direction="received", amount_min="1000", amount_max="20000")
                t = time.perf_counter()
                r = await http.get("/invoices", params=params)
                lat.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, r.text
                if r.json()["next_cursor"] and len(cursors) < 200:
                    cursors.append(r.json()["next_cursor"])
            lat.sort()
            p99 = lat[int(len(lat) * 0.99) - 1]
            print(f"invoice list at {args.rows} invoices: {len(lat)} requests over HTTP, "
                  f"p50 {statistics.median(lat):.1f} ms, p99 {p99:.1f} ms, max {lat[-1]:.1f} ms")
            # -- export memory ------------------------------------------------------------------------
            base_rss = rss_mb()
            peak = base_rss
            stop = False

            async def sample() -> None:
                nonlocal peak
                while not stop:
                    peak = max(peak, rss_mb())
                    await asyncio.sleep(0.02)
            sampler = asyncio.create_task(sample())
            t0 = time.perf_counter()
            size = 0
            async with http.stream("GET", "/invoices-export.zip", params={"cif": exp_cif, "include": "xml,zip"}) as r:
                assert r.status_code == 200
                async for chunk in r.aiter_bytes():
                    size += len(chunk)
            stop = True
            await sampler
            print(f"bulk export of {args.export} invoices: {size / 2**20:.1f} MB streamed in "
                  f"{time.perf_counter() - t0:.1f}s, peak RSS growth {peak - base_rss:.1f} MB "
                  f"(RSS {base_rss:.0f} -> {peak:.0f} MB)")
    finally:
        server.should_exit = True
        await task
        await runtime.engine.dispose()
        await drop_database(settings, db)


if __name__ == "__main__":
    asyncio.run(main())
