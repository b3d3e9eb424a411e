"""Contract tests of the AnafBudget port, run against InMemoryBudget and PostgresBudget alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from spvhub_common.anaf.budget import (
    AnafBudget,
    BudgetKind,
    BudgetLimits,
    PostgresBudget,
    ensure_schema,
)
from spvhub_common.anaf.clock import ManualClock
from spvhub_common.anaf.errors import BudgetExhausted
from sqlalchemy.ext.asyncio import AsyncEngine

pytestmark = pytest.mark.asyncio

MakeBudget = Callable[..., AnafBudget]


async def settle(pred: Callable[[], bool], limit_s: float = 20.0) -> None:
    """Let real I/O run until `pred()` holds (the budget's own waits are on the manual clock)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not pred():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


async def test_window_limit_waits_for_next_window(make_budget: MakeBudget, clock: ManualClock) -> None:
    budget = make_budget(BudgetLimits(per_minute=5))
    for _ in range(5):
        await budget.acquire(BudgetKind.API)
    assert await budget.remaining(BudgetKind.API) == 0
    sixth = asyncio.create_task(budget.acquire(BudgetKind.EF_LIST_PAGED, "123"))
    await settle(lambda: clock.sleepers == 1)
    assert not sixth.done()
    clock.advance(59)
    await asyncio.sleep(0.05)
    assert not sixth.done()
    clock.advance(1)
    await asyncio.wait_for(sixth, 10)
    assert await budget.remaining(BudgetKind.API) == 4


async def test_public_registry_one_per_second(make_budget: MakeBudget, clock: ManualClock) -> None:
    budget = make_budget()
    await budget.acquire(BudgetKind.PUBLIC)
    second = asyncio.create_task(budget.acquire(BudgetKind.PUBLIC))
    await settle(lambda: clock.sleepers == 1)
    # The public window is separate from api.anaf.ro's minute window.
    await budget.acquire(BudgetKind.API)
    clock.advance(1)
    await asyncio.wait_for(second, 10)


async def test_daily_cap_raises_at_once_and_resets_at_bucharest_midnight(
    make_budget: MakeBudget, clock: ManualClock
) -> None:
    budget = make_budget()
    for _ in range(10):
        await budget.acquire(BudgetKind.EF_DOWNLOAD, "3001503294")
    with pytest.raises(BudgetExhausted) as exc:
        await budget.acquire(BudgetKind.EF_DOWNLOAD, "3001503294")
    # 2026-01-16 00:00 in Bucharest (EET, UTC+2).
    assert exc.value.resets_at == datetime(2026, 1, 15, 22, 0, tzinfo=UTC)
    assert exc.value.kind == BudgetKind.EF_DOWNLOAD and exc.value.key == "3001503294"
    assert clock.sleepers == 0
    assert await budget.remaining(BudgetKind.EF_DOWNLOAD, "3001503294") == 0
    # Another message has its own 10.
    await budget.acquire(BudgetKind.EF_DOWNLOAD, "3001503295")
    assert await budget.remaining(BudgetKind.EF_DOWNLOAD, "3001503295") == 9
    clock.set(datetime(2026, 1, 15, 21, 59, 59, tzinfo=UTC))
    with pytest.raises(BudgetExhausted):
        await budget.acquire(BudgetKind.EF_DOWNLOAD, "3001503294")
    clock.set(datetime(2026, 1, 15, 22, 0, 0, tzinfo=UTC))
    await budget.acquire(BudgetKind.EF_DOWNLOAD, "3001503294")
    assert await budget.remaining(BudgetKind.EF_DOWNLOAD, "3001503294") == 9


async def test_daily_reset_follows_summer_time(make_budget: MakeBudget, clock: ManualClock) -> None:
    clock.set(datetime(2026, 7, 1, 20, 30, tzinfo=UTC))  # 23:30 EEST
    budget = make_budget(BudgetLimits(daily={BudgetKind.EF_LIST: 1}))
    await budget.acquire(BudgetKind.EF_LIST, "8000000000")
    with pytest.raises(BudgetExhausted) as exc:
        await budget.acquire(BudgetKind.EF_LIST, "8000000000")
    assert exc.value.resets_at == datetime(2026, 7, 1, 21, 0, tzinfo=UTC)
    clock.set(datetime(2026, 7, 1, 21, 0, tzinfo=UTC))
    await budget.acquire(BudgetKind.EF_LIST, "8000000000")


async def test_exhausted_daily_call_does_not_spend_window(make_budget: MakeBudget) -> None:
    budget = make_budget(BudgetLimits(per_minute=100, daily={BudgetKind.EF_STATE: 2}))
    for _ in range(2):
        await budget.acquire(BudgetKind.EF_STATE, "5001")
    for _ in range(5):
        with pytest.raises(BudgetExhausted):
            await budget.acquire(BudgetKind.EF_STATE, "5001")
    assert await budget.remaining(BudgetKind.API) == 98


async def test_concurrent_acquires_respect_window_exactly(make_budget: MakeBudget, clock: ManualClock) -> None:
    budget = make_budget(BudgetLimits(per_minute=20))
    tasks = [asyncio.create_task(budget.acquire(BudgetKind.API)) for _ in range(50)]
    await settle(lambda: sum(t.done() for t in tasks) + clock.sleepers == 50)
    assert sum(t.done() for t in tasks) == 20
    assert clock.sleepers == 30
    clock.advance(60)
    await settle(lambda: sum(t.done() for t in tasks) + clock.sleepers == 50)
    assert sum(t.done() for t in tasks) == 40
    clock.advance(60)
    await asyncio.wait_for(asyncio.gather(*tasks), 20)


async def test_concurrent_acquires_respect_daily_cap_exactly(make_budget: MakeBudget) -> None:
    budget = make_budget(BudgetLimits(daily={BudgetKind.EF_LIST: 20}))
    results = await asyncio.gather(
        *(budget.acquire(BudgetKind.EF_LIST, "8000000000") for _ in range(50)), return_exceptions=True
    )
    assert sum(r is None for r in results) == 20
    assert sum(isinstance(r, BudgetExhausted) for r in results) == 30


async def test_mark_exhausted_daily_blocks_key_until_midnight(make_budget: MakeBudget, clock: ManualClock) -> None:
    budget = make_budget()
    await budget.acquire(BudgetKind.EF_LIST, "8000000000")
    await budget.mark_exhausted(BudgetKind.EF_LIST, "8000000000")
    with pytest.raises(BudgetExhausted):
        await budget.acquire(BudgetKind.EF_LIST, "8000000000")
    assert await budget.remaining(BudgetKind.EF_LIST, "8000000000") == 0
    await budget.acquire(BudgetKind.EF_LIST, "8000000001")
    clock.set(datetime(2026, 1, 15, 22, 0, tzinfo=UTC))
    await budget.acquire(BudgetKind.EF_LIST, "8000000000")


async def test_mark_exhausted_daily_with_later_reset_blocks_following_days(
    make_budget: MakeBudget, clock: ManualClock
) -> None:
    budget = make_budget()
    resets = datetime(2026, 1, 16, 22, 0, tzinfo=UTC)  # midnight after tomorrow, local
    await budget.mark_exhausted(BudgetKind.EF_UPLOAD_RASP, "8000000000", resets_at=resets)
    clock.set(datetime(2026, 1, 16, 12, 0, tzinfo=UTC))
    with pytest.raises(BudgetExhausted):
        await budget.acquire(BudgetKind.EF_UPLOAD_RASP, "8000000000")
    clock.set(resets)
    await budget.acquire(BudgetKind.EF_UPLOAD_RASP, "8000000000")


async def test_mark_exhausted_window_after_429(make_budget: MakeBudget, clock: ManualClock) -> None:
    budget = make_budget(BudgetLimits(per_minute=100))
    await budget.mark_exhausted(BudgetKind.API, resets_at=clock.now() + timedelta(seconds=90))
    assert await budget.remaining(BudgetKind.API) == 0
    waiting = asyncio.create_task(budget.acquire(BudgetKind.ET_INFO))
    await settle(lambda: clock.sleepers == 1)
    clock.advance(60)  # window [60s, 120s) is blocked too
    await settle(lambda: clock.sleepers == 1)
    assert not waiting.done()
    clock.advance(60)
    await asyncio.wait_for(waiting, 10)


async def test_unlimited_kinds(make_budget: MakeBudget) -> None:
    budget = make_budget(BudgetLimits(per_minute=1))
    for _ in range(5):
        await budget.acquire(BudgetKind.OAUTH)
    assert await budget.remaining(BudgetKind.OAUTH) is None


async def test_postgres_budget_shared_between_instances(pg_engine: AsyncEngine, clock: ManualClock) -> None:
    limits = BudgetLimits(per_minute=3, daily={BudgetKind.EF_DOWNLOAD: 2})
    a, b = PostgresBudget(pg_engine, limits, clock), PostgresBudget(pg_engine, limits, clock)
    await a.acquire(BudgetKind.EF_DOWNLOAD, "1")
    await b.acquire(BudgetKind.EF_DOWNLOAD, "1")
    with pytest.raises(BudgetExhausted):
        await a.acquire(BudgetKind.EF_DOWNLOAD, "1")
    await a.acquire(BudgetKind.API)
    assert await b.remaining(BudgetKind.API) == 0
    await b.mark_exhausted(BudgetKind.EF_LIST, "9")
    with pytest.raises(BudgetExhausted):
        await a.acquire(BudgetKind.EF_LIST, "9")


async def test_postgres_schema_idempotent_and_prune(pg_engine: AsyncEngine, clock: ManualClock) -> None:
    await asyncio.gather(*(ensure_schema(pg_engine) for _ in range(5)))
    budget = PostgresBudget(pg_engine, BudgetLimits(), clock)
    await budget.acquire(BudgetKind.EF_DOWNLOAD, "1")
    clock.advance(5 * 86400)
    await budget.prune()
    async with pg_engine.connect() as conn:
        windows = (await conn.exec_driver_sql("SELECT count(*) FROM anaf_budget.window_counter")).scalar_one()
        daily = (await conn.exec_driver_sql("SELECT count(*) FROM anaf_budget.daily_counter")).scalar_one()
    assert (windows, daily) == (0, 0)


async def test_budgets_implement_the_port(clock: ManualClock) -> None:
    from spvhub_common.anaf.budget import InMemoryBudget

    assert isinstance(InMemoryBudget(clock=clock), AnafBudget)
