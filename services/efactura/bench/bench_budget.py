"""Benchmark: share of ANAF's 1000 calls/minute used by a sync over a 5-minute run, with 100 ms latency and the
emulator enforcing 1000/min (HTTP 429 beyond). Prints the share and the 429 count; not a test.

    python services/efactura/bench/bench_budget.py [--minutes 5] [--companies 20]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import json  # noqa: E402
import subprocess  # noqa: E402

import httpx  # noqa: E402
from bench_sync import free_port  # noqa: E402
from efactura_kit import Harness, company_cifs, efactura_settings, new_emulator, scenario  # noqa: E402
from spvhub_common.anaf.budget import BudgetLimits  # noqa: E402
from spvhub_common.db import drop_database, ensure_database  # noqa: E402
from spvhub_common.logging import configure_logging  # noqa: E402


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=int, default=5, help="whole minutes, measured from a minute boundary")
    ap.add_argument("--companies", type=int, default=20)
    ap.add_argument("--in-process", action="store_true", help="emulator in this process (default: its own process)")
    args = ap.parse_args()
    configure_logging("efactura", "WARNING")
    db = f"bench_{uuid.uuid4().hex[:10]}"
    settings = efactura_settings(db, f"b{uuid.uuid4().hex[:8]}.", anaf_calls_per_minute=950,
                                 max_concurrent_companies=10, downloads_per_company=8, anaf_timeout=5.0)
    await ensure_database(settings, db)
    cifs = company_cifs(args.companies)
    proc = None
    if args.in_process:
        emulator: object = new_emulator(args.companies)  # rate_limit_per_minute = 1000 (default)
    else:
        port = free_port()
        scen = Path(f"/tmp/efactura-budget-{port}.json")
        scen.write_text(json.dumps(scenario(args.companies)))
        proc = subprocess.Popen([sys.executable, "-m", "anaf_emulator", "--scenario", str(scen), "--port", str(port)],
                                stdout=subprocess.DEVNULL)
        emulator = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(f"{emulator}/__admin/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
    try:
        async with Harness(settings, emulator) as h:
            need = int(1000 * args.minutes * 1.3)
            per_day = max(1.0, need / args.companies / 58)
            await h.admin("invoices/generate", {"cuis": cifs, "per_company_per_day": per_day, "days": 58})
            if args.in_process:  # pre-sign: the emulator's signing is not part of the measurement
                st = emulator.state.emulator  # type: ignore[attr-defined]
                for up in list(st.uploads.values()):
                    if up.message_ids:
                        st.zip_for(up)
            await h.admin("faults", {"family": "efactura", "latency_ms": [100, 100]})
            await h.grant("acc", cifs)
            # ANAF's limit (and the emulator's) counts per clock minute, and so does our budget: measure whole
            # minutes from a boundary, or a run's two partial minutes each add up to a minute's worth of calls
            now = h.clock.now()
            await asyncio.sleep(60 - now.second - now.microsecond / 1e6)
            await h.admin("counters", method="DELETE")
            t0 = time.perf_counter()

            async def drive() -> None:
                while True:
                    await h.sync.tick()
                    await asyncio.sleep(0.2)
            task = asyncio.create_task(drive())
            minutes = max(1, args.minutes)
            # stop a second before the last boundary: calls of the next minute must not land in this count
            await asyncio.sleep(minutes * 60 - 1 - (time.perf_counter() - t0))
            task.cancel()
            await h.sync.stop()
            elapsed = time.perf_counter() - t0
            counters = await h.admin("counters", method="GET")
            calls = sum(v for k, v in counters["endpoints"].items() if "/FCTEL/" in k)
            rejected = counters["rejected"].get("429", 0)
            print(f"run {elapsed:.0f}s, ANAF e-Factura calls {calls}, HTTP 429: {rejected}")
            reserve = BudgetLimits().interactive_reserve
            bulk = settings.anaf_calls_per_minute - reserve
            print(f"budget share used: {calls / (1000 * minutes):.3f} of 1000/min over {minutes} whole minutes "
                  f"(target >= 0.9; the sync's "
                  f"ceiling is {bulk}/min = {bulk / 1000:.3f}: our budget of {settings.anaf_calls_per_minute}/min "
                  f"minus {reserve} kept for interactive calls)")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        await drop_database(settings, db)


if __name__ == "__main__":
    asyncio.run(main())
