"""Fixtures for the ANAF client and budget tests: a throwaway PostgreSQL database per session.

PostgreSQL comes from `SPVHUB_TEST_PG_DSN` (default: the dev stack on 127.0.0.1:55432); if it is
unreachable the tests fail loudly, they never skip.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from spvhub_common.anaf.budget import (
    AnafBudget,
    BudgetLimits,
    InMemoryBudget,
    PostgresBudget,
    ensure_schema,
)
from spvhub_common.clock import ManualClock
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DEFAULT_DSN = "postgresql+asyncpg://postgres@127.0.0.1:55432/postgres"


async def _admin_async(dsn: str, sql: str) -> None:
    engine = create_async_engine(dsn, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


def _admin(dsn: str, sql: str) -> None:
    """Run one admin statement on its own loop in a thread (the fixture may be reached from a running loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _admin_async(dsn, sql)).result(timeout=30)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A uniquely named database for this test session, dropped at the end."""
    base = os.environ.get("SPVHUB_TEST_PG_DSN", DEFAULT_DSN)
    name = f"anaf_budget_test_{uuid.uuid4().hex[:10]}"
    try:
        _admin(base, f'CREATE DATABASE "{name}"')
    except Exception as exc:  # fail loudly: these are integration tests of a real adapter
        pytest.fail(f"PostgreSQL unreachable at {make_url(base).render_as_string(hide_password=True)}: {exc!r}")
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    yield url
    _admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _fresh_engine(dsn: str) -> AsyncEngine:
    engine = create_async_engine(dsn, pool_size=10, max_overflow=60)
    await ensure_schema(engine)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("TRUNCATE anaf_budget.window_counter, anaf_budget.daily_counter")
    return engine


@pytest_asyncio.fixture
async def pg_engine(pg_dsn: str) -> AsyncIterator[AsyncEngine]:
    engine = await _fresh_engine(pg_dsn)
    yield engine
    await engine.dispose()


@pytest.fixture
def clock() -> ManualClock:
    # 10:00:00 UTC = 12:00 in Bucharest (winter), aligned on a minute boundary.
    return ManualClock(datetime(2026, 1, 15, 10, 0, 0, tzinfo=UTC))


@pytest_asyncio.fixture(params=["memory", "postgres"])
async def make_budget(request: pytest.FixtureRequest, clock: ManualClock) -> AsyncIterator[object]:
    """A factory `make_budget(limits) -> AnafBudget` for both implementations of the port."""
    if request.param == "memory":

        def memory(limits: BudgetLimits | None = None) -> AnafBudget:
            return InMemoryBudget(limits, clock)

        yield memory
        return
    dsn: str = request.getfixturevalue("pg_dsn")
    engine = await _fresh_engine(dsn)

    def postgres(limits: BudgetLimits | None = None) -> AnafBudget:
        return PostgresBudget(engine, limits, clock)

    yield postgres
    await engine.dispose()
