"""Benchmark: sync throughput (invoices/s) on the real stack (PostgreSQL, MinIO, Kafka relay) against the
in-process emulator with no ANAF latency. Prints figures; not a test.

    python services/efactura/bench/bench_sync.py [--companies 20] [--per-day 5] [--days 59] [--latency 0,0]
        [--faults]   # 5% 5xx, 1% timeouts, 50-200 ms latency (the acceptance mix, full size)
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402

import httpx  # noqa: E402
from efactura_kit import Harness, company_cifs, efactura_settings, new_emulator, scenario  # noqa: E402
from spvhub_common.db import drop_database, ensure_database  # noqa: E402
from spvhub_common.logging import configure_logging  # noqa: E402


def _cpu_of(pid: int) -> float:
    """utime + stime (+ reaped children) of a process in seconds, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def cpu_by_part(emulator_pid: int | None) -> dict[str, float]:
    """CPU seconds used so far by each part of the system on this machine (Linux /proc)."""
    me = os.getpid()
    out: Counter[str] = Counter()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        pid = int(d.name)
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if pid == me:
            part = "sync service (event loop + threads)"
        elif pid == emulator_pid:
            part = "ANAF emulator"
        elif ppid == me:
            part = "sync service (parse workers)"
        elif "minio" in cmd.split(" ")[0]:
            part = "MinIO"
        elif cmd.startswith("postgres"):
            part = "PostgreSQL"
        elif "kafka" in cmd and "java" in cmd.split(" ")[0]:
            part = "Kafka"
        else:
            continue
        out[part] += _cpu_of(pid)
    return dict(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def drive_like_the_service(h: Harness, n_companies: int) -> None:
    """The service's scheduler: a tick every 0.1 s claims due companies up to the free slots (no waiting for a
    whole wave to finish), until every company has synced once and nothing is due. Prints progress every 5 s."""
    from spvhub_efactura.adapters.orm import companies
    from spvhub_efactura.sync.metrics import MESSAGES_OF
    from sqlalchemy import func, select

    def archived() -> float:
        return float(MESSAGES_OF("archived")._value.get())  # noqa: SLF001 - the counter's current value
    t0 = last = time.perf_counter()
    base = last_n = archived()
    while True:
        await h.sync.tick()
        if time.perf_counter() - last >= 5:  # progress: archived so far, and the rate over the last interval
            n, now = archived(), time.perf_counter()
            print(f"  {now - t0:4.0f}s  archived {n - base:5.0f}  ({(n - last_n) / (now - last):.0f}/s)", flush=True)
            last, last_n = now, n
        if not h.sync.scheduler._running:  # noqa: SLF001
            async with h.runtime.sessions() as s:
                synced = (await s.execute(select(func.count()).select_from(companies).where(
                    companies.c.last_success_at.is_not(None)))).scalar()
            if synced >= n_companies and await h.pending_due() == 0:
                return
        await asyncio.sleep(0.1)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--companies", type=int, default=20)
    ap.add_argument("--per-day", type=float, default=5.0)
    ap.add_argument("--days", type=int, default=59)
    ap.add_argument("--faults", action="store_true")
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--downloads", type=int, default=16)
    ap.add_argument("--list-ahead", type=int, default=None, help="companies listed ahead of a free download slot")
    ap.add_argument("--parse-processes", type=int, default=None, help="worker processes for parsing (0: threads)")
    ap.add_argument("--in-process", action="store_true", help="emulator in this process (default: its own process)")
    args = ap.parse_args()
    configure_logging("efactura", "WARNING")
    db = f"bench_{uuid.uuid4().hex[:10]}"
    from spvhub_efactura.settings import Settings
    # the service's own lease (the test kit's 5 s lease is for the kill -9 tests: it renews 24 times as often)
    given = {"parse_processes": args.parse_processes, "list_ahead_companies": args.list_ahead}
    settings = efactura_settings(db, f"b{uuid.uuid4().hex[:8]}.", max_concurrent_companies=args.concurrency,
                                 lease_seconds=Settings.model_fields["lease_seconds"].default,
                                 downloads_per_company=args.downloads, anaf_timeout=2.0,
                                 **{k: v for k, v in given.items() if v is not None})
    await ensure_database(settings, db)
    cifs = company_cifs(args.companies)
    proc = None
    if args.in_process:
        emulator: object = new_emulator(args.companies, rate_limit_per_minute=0)
    else:
        port = free_port()
        scen = Path(f"/tmp/efactura-bench-{port}.json")
        scen.write_text(json.dumps(scenario(args.companies)))
        proc = subprocess.Popen([sys.executable, "-m", "anaf_emulator", "--scenario", str(scen), "--port", str(port),
                                 "--switch", "rate_limit_per_minute=0"], stdout=subprocess.DEVNULL)
        emulator = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(f"{emulator}/__admin/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
    try:
        async with Harness(settings, emulator) as h:
            t0 = time.perf_counter()
            # presign: ANAF has its signed ZIPs ready; the emulator's signing is not counted as our sync's work
            gen = await h.admin("invoices/generate", {"cuis": cifs, "per_company_per_day": args.per_day,
                                                      "days": args.days, "presign": True})
            print(f"generated {gen} in {time.perf_counter() - t0:.1f}s (emulator side, incl. signing)")
            if args.faults:
                await h.admin("faults", {"family": "efactura", "latency_ms": [50, 200], "error_rate": 0.05,
                                         "error_status": 503, "timeout_rate": 0.01, "timeout_seconds": 3})
            await h.grant("acc", cifs)
            cpu0 = cpu_by_part(proc.pid if proc else None)
            t0 = time.perf_counter()
            await drive_like_the_service(h, len(cifs))
            dt = time.perf_counter() - t0
            cpu1 = cpu_by_part(proc.pid if proc else None)
            ledger = await h.ledger()
            states = Counter(r["state"] for r in ledger.values())
            archived = states.get("archived", 0)
            print(f"companies={args.companies} messages={len(ledger)} states={dict(states)}")
            print(f"sync wall time {dt:.1f}s -> throughput {archived / dt:.0f} invoices/s "
                  f"(ANAF calls {h.sync.anaf.calls}, transient failures {h.sync.anaf.transient_failures})")
            parser, committer = h.sync.pool._parser, h.sync.archiver._committer  # noqa: SLF001
            print(f"batches: parse {archived / max(parser.flushes, 1):.1f} ZIPs per worker round trip, "
                  f"commit {archived / max(committer.flushes, 1):.1f} invoices per transaction")
            print("CPU per archived invoice during the sync (ms; 2 cores = 10 ms per invoice at 200/s):")
            total = 0.0
            for part in sorted(cpu1, key=lambda k: -(cpu1[k] - cpu0.get(k, 0.0))):
                used = cpu1[part] - cpu0.get(part, 0.0)
                total += used
                print(f"  {part:<38} {1000 * used / max(archived, 1):6.2f}")
            print(f"  {'total':<38} {1000 * total / max(archived, 1):6.2f}  ({total / dt:.2f} cores busy)")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        await drop_database(settings, db)


if __name__ == "__main__":
    import uvloop  # the service's loop: uvicorn runs it on uvloop (spvhub_common.runtime)
    uvloop.run(main())
