"""Microbenchmark: `PostgresBudget.acquire()` calls per second from one process with many concurrent callers.

Runs against a throwaway database on the dev PostgreSQL (`SPVHUB_TEST_PG_DSN`, default 127.0.0.1:55432) with a
window limit too high to ever wait, so it measures the cost of the bookkeeping itself. Two workloads:

- `download`: e-Factura downloads (a daily counter per message id, here a new id per call, plus the shared
  per-minute window), what the efactura sync does ~100+ at a time;
- `api`: window-only calls (the shared per-minute window row alone).

Also prints the latency of a lone caller (one acquire at a time). Prints figures; not a test.

    python services/efactura/bench/bench_budget_acquire.py [--callers 200] [--seconds 5] [--pool 10]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid

from spvhub_common.anaf.budget import BudgetKind, BudgetLimits, PostgresBudget, ensure_schema
from spvhub_common.anaf.clock import SystemClock
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DEFAULT_DSN = "postgresql+asyncpg://postgres@127.0.0.1:55432/postgres"


async def admin(dsn: str, sql: str) -> None:
    engine = create_async_engine(dsn, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


async def run(budget: PostgresBudget, kind: str, callers: int, seconds: float) -> tuple[int, list[float]]:
    stop = time.perf_counter() + seconds
    done = 0
    latencies: list[float] = []

    async def caller(i: int) -> None:
        nonlocal done
        n = 0
        while time.perf_counter() < stop:
            key = f"{i}-{n}-{uuid.uuid4().hex[:6]}" if kind == BudgetKind.EF_DOWNLOAD else None
            t = time.perf_counter()
            await budget.acquire(kind, key)
            latencies.append(time.perf_counter() - t)
            n += 1
            done += 1

    await asyncio.gather(*(caller(i) for i in range(callers)))
    return done, latencies


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * q))] * 1000 if values else float("nan")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--callers", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--pool", type=int, default=10, help="pool_size (services: 10 + 10 overflow)")
    args = ap.parse_args()
    base = os.environ.get("SPVHUB_TEST_PG_DSN", DEFAULT_DSN)
    name = f"bench_budget_{uuid.uuid4().hex[:10]}"
    await admin(base, f'CREATE DATABASE "{name}"')
    engine: AsyncEngine = create_async_engine(
        make_url(base).set(database=name).render_as_string(hide_password=False), pool_size=args.pool, max_overflow=10
    )
    try:
        await ensure_schema(engine)
        limits = BudgetLimits(per_minute=10**9, daily={BudgetKind.EF_DOWNLOAD: 10})
        budget = PostgresBudget(engine, limits, SystemClock())
        await budget.acquire(BudgetKind.API)  # warm the pool
        for kind in (BudgetKind.EF_DOWNLOAD, BudgetKind.API):
            n, lat = await run(budget, kind, args.callers, args.seconds)
            print(f"{kind.value:<22} {args.callers} callers: {n / args.seconds:8.0f} acquires/s "
                  f"(p50 {pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms)")
        n, lat = await run(budget, BudgetKind.EF_DOWNLOAD, 1, min(args.seconds, 2.0))
        print(f"{'lone caller':<22} 1 caller:   {n / min(args.seconds, 2.0):8.0f} acquires/s "
              f"(mean {statistics.mean(lat) * 1000:.2f} ms per acquire)")
    finally:
        await engine.dispose()
        await admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
