"""Contract tests of the AnafBudget port, run against InMemoryBudget and PostgresBudget alike."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from spvhub_common.anaf.budget import (
    AnafBudget,
    BudgetKind,
    BudgetLimits,
    PostgresBudget,
    Priority,
    ensure_schema,
)
from spvhub_common.anaf.errors import BudgetExhausted
from spvhub_common.clock import ManualClock
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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


async def settle_async(pred: Callable[[], Awaitable[bool]], limit_s: float = 10.0) -> None:
    """`settle` for a condition read from the budget (slots given back in the background)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not await pred():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


async def test_window_limit_waits_for_next_window(make_budget: MakeBudget, clock: ManualClock) -> None:
    budget = make_budget(BudgetLimits(per_minute=5, interactive_reserve=0))
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
    budget = make_budget(BudgetLimits(per_minute=20, interactive_reserve=0))
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
    budget = make_budget(BudgetLimits(per_minute=1, interactive_reserve=0))
    for _ in range(5):
        await budget.acquire(BudgetKind.OAUTH)
    assert await budget.remaining(BudgetKind.OAUTH) is None


async def test_postgres_budget_shared_between_instances(pg_engine: AsyncEngine, clock: ManualClock) -> None:
    limits = BudgetLimits(per_minute=3, interactive_reserve=0, daily={BudgetKind.EF_DOWNLOAD: 2})
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


# --- priority: the interactive reserve -----------------------------------------------------------


async def test_bulk_cannot_take_the_interactive_reserve(make_budget: MakeBudget, clock: ManualClock) -> None:
    budget = make_budget(BudgetLimits(per_minute=10, interactive_reserve=3))
    bulk = [asyncio.create_task(budget.acquire(BudgetKind.EF_LIST_PAGED, "8000000000")) for _ in range(12)]
    await settle(lambda: sum(t.done() for t in bulk) + clock.sleepers == 12)
    assert sum(t.done() for t in bulk) == 7 and clock.sleepers == 5
    assert await budget.remaining(BudgetKind.API) == 3  # the whole window is reported, reserve included
    # A person waiting: interactive calls take the reserve at once ...
    for _ in range(3):
        await asyncio.wait_for(budget.acquire(BudgetKind.EF_LIST, "8000000000", priority=Priority.INTERACTIVE), 10)
    assert await budget.remaining(BudgetKind.API) == 0
    # ... but never more than the whole window.
    fourth = asyncio.create_task(budget.acquire(BudgetKind.API, priority=Priority.INTERACTIVE))
    await settle(lambda: clock.sleepers == 6)
    assert not fourth.done() and sum(t.done() for t in bulk) == 7
    clock.advance(60)
    await asyncio.wait_for(asyncio.gather(fourth, *bulk), 20)
    assert await budget.remaining(BudgetKind.API) == 4


async def test_reserve_applies_to_the_api_window_only(make_budget: MakeBudget, clock: ManualClock) -> None:
    budget = make_budget(BudgetLimits(per_minute=10, interactive_reserve=9, public_per_second=1))
    await budget.acquire(BudgetKind.PUBLIC)  # bulk still gets the public registry's 1/second
    await budget.acquire(BudgetKind.API)  # and per_minute - reserve = 1 api call
    waiting = asyncio.create_task(budget.acquire(BudgetKind.API))
    await settle(lambda: clock.sleepers == 1)
    assert not waiting.done()
    clock.advance(60)
    await asyncio.wait_for(waiting, 10)


async def test_reserve_must_leave_bulk_calls_a_share() -> None:
    assert BudgetLimits().interactive_reserve == 20
    with pytest.raises(ValueError):
        BudgetLimits(per_minute=20)  # the default reserve of 20 would starve bulk calls
    with pytest.raises(ValueError):
        BudgetLimits(interactive_reserve=-1)
    assert BudgetLimits(per_minute=21).window(BudgetKind.API).limit_for(Priority.BULK) == 1  # type: ignore[union-attr]


# --- concurrency, duplicates, cancellation --------------------------------------------------------


async def test_duplicate_keys_in_one_batch(make_budget: MakeBudget) -> None:
    budget = make_budget(BudgetLimits(per_minute=100, daily={BudgetKind.EF_LIST: 3, BudgetKind.EF_STATE: 1}))
    calls = [(BudgetKind.EF_LIST, "8000000000")] * 10 + [(BudgetKind.EF_STATE, "5001")] * 4
    calls += [(BudgetKind.EF_LIST, "8000000001"), (BudgetKind.API, None)]
    flushes = getattr(budget, "flushes", 0)
    results = await asyncio.gather(*(budget.acquire(k, key) for k, key in calls), return_exceptions=True)
    assert sum(r is None for r in results[:10]) == 3
    assert sum(r is None for r in results[10:14]) == 1
    assert results[14:] == [None, None]
    assert all(isinstance(r, BudgetExhausted) for r in results if r is not None)
    assert await budget.remaining(BudgetKind.EF_LIST, "8000000000") == 0
    assert await budget.remaining(BudgetKind.EF_STATE, "5001") == 0
    assert await budget.remaining(BudgetKind.API) == 100 - 6  # refused calls spend no window slot
    if isinstance(budget, PostgresBudget):
        # duplicates are one row update of their flush, not a flush each
        assert budget.flushes - flushes <= 2


async def test_cancelled_while_waiting_for_the_window_gives_its_daily_slot_back(
    make_budget: MakeBudget, clock: ManualClock
) -> None:
    budget = make_budget(BudgetLimits(per_minute=2, interactive_reserve=0))
    await budget.acquire(BudgetKind.API)
    await budget.acquire(BudgetKind.API)
    waiting = asyncio.create_task(budget.acquire(BudgetKind.EF_DOWNLOAD, "3001503294"))
    await settle(lambda: clock.sleepers == 1)
    assert await budget.remaining(BudgetKind.EF_DOWNLOAD, "3001503294") == 9  # the daily slot is held
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting

    async def slot_back() -> bool:
        return await budget.remaining(BudgetKind.EF_DOWNLOAD, "3001503294") == 10

    await settle_async(slot_back)
    clock.advance(60)
    await budget.acquire(BudgetKind.EF_DOWNLOAD, "3001503294")
    assert await budget.remaining(BudgetKind.EF_DOWNLOAD, "3001503294") == 9
    assert await budget.remaining(BudgetKind.API) == 1


async def test_a_retry_for_the_window_never_spends_the_daily_cap_again(
    make_budget: MakeBudget, clock: ManualClock
) -> None:
    budget = make_budget(BudgetLimits(per_minute=1, interactive_reserve=0, daily={BudgetKind.EF_STATE: 2}))
    await budget.acquire(BudgetKind.API)
    waiting = [asyncio.create_task(budget.acquire(BudgetKind.EF_STATE, "5001")) for _ in range(2)]
    await settle(lambda: clock.sleepers == 2)
    for _ in range(3):  # each new window serves one of them; the other waits again
        clock.advance(60)
        await settle(lambda: sum(t.done() for t in waiting) + clock.sleepers == 2)
    await asyncio.wait_for(asyncio.gather(*waiting), 10)
    assert await budget.remaining(BudgetKind.EF_STATE, "5001") == 0  # 2 calls made, 2 daily slots spent


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_cancelled_callers_neither_leak_nor_double_spend(
    make_budget: MakeBudget, clock: ManualClock, seed: int
) -> None:
    """Callers cancelled at random moments (queued, in a running flush, answered but not yet resumed, waiting
    for the next window with their daily slot): every slot spent belongs to a call that was made or is
    still waiting, exactly."""
    rng = random.Random(seed)
    limit = 40
    budget = make_budget(BudgetLimits(per_minute=limit, interactive_reserve=0, daily={BudgetKind.EF_DOWNLOAD: 3}))
    keys = [f"30015{i:05d}" for i in range(20)]
    calls = [keys[i % len(keys)] for i in range(200)]  # up to 60 downloads: 40 this window, 20 wait
    tasks = [asyncio.create_task(budget.acquire(BudgetKind.EF_DOWNLOAD, k)) for k in calls]

    async def cancel_later(task: asyncio.Task[None]) -> None:
        for _ in range(rng.randrange(0, 12)):
            await asyncio.sleep(0)
        if rng.random() < 0.5:
            await asyncio.sleep(rng.random() * 0.01)
        task.cancel()

    await asyncio.gather(*(cancel_later(t) for t in rng.sample(tasks, 120)))
    await settle(lambda: sum(t.done() for t in tasks) + clock.sleepers == len(tasks))

    def made(among: list[int]) -> dict[str, int]:
        out = dict.fromkeys(keys, 0)
        for i in among:
            t = tasks[i]
            if t.done() and not t.cancelled() and t.exception() is None:
                out[calls[i]] += 1
            elif not t.done():  # waiting for the next window: holds its daily slot
                out[calls[i]] += 1
        return out

    async def daily_spent() -> dict[str, int]:
        return {k: 3 - (await budget.remaining(BudgetKind.EF_DOWNLOAD, k) or 0) for k in keys}

    first = [i for i, t in enumerate(tasks) if t.done() and not t.cancelled() and t.exception() is None]
    expect_daily = made(list(range(len(tasks))))

    async def balanced_now() -> bool:
        window = limit - (await budget.remaining(BudgetKind.API) or 0)
        return window == len(first) and await daily_spent() == expect_daily

    await settle_async(balanced_now)
    waiting = [i for i, t in enumerate(tasks) if not t.done()]
    for i in rng.sample(waiting, len(waiting) // 2):  # some give up while waiting for the window
        tasks[i].cancel()
    clock.advance(60)
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 20)
    for r in results:
        assert r is None or isinstance(r, BudgetExhausted | asyncio.CancelledError), r
    second = [i for i in waiting if results[i] is None]
    assert set(first).isdisjoint(second)

    async def balanced_after() -> bool:
        window = limit - (await budget.remaining(BudgetKind.API) or 0)
        return window == len(second) and await daily_spent() == made(first + second)

    await settle_async(balanced_after)
    if isinstance(budget, PostgresBudget):
        print(f"seed {seed}: {budget.flushes} flushes, {budget.flushed_asks} asks, {budget.given_back} slots back")


async def test_budget_with_priority_implements_the_port_signature(clock: ManualClock) -> None:
    import inspect

    from spvhub_common.anaf.budget import InMemoryBudget

    for impl in (InMemoryBudget, PostgresBudget):
        params = inspect.signature(impl.acquire).parameters
        assert params["priority"].kind is inspect.Parameter.KEYWORD_ONLY
        assert params["priority"].default is Priority.BULK


# --- PostgresBudget: group commit across processes ------------------------------------------------


def _count_statements(engine: AsyncEngine) -> list[str]:
    """Every statement the engine sends to PostgreSQL (through a SQLAlchemy event listener)."""
    seen: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement)

    return seen


def _takes(statements: list[str]) -> int:
    return sum("INSERT INTO anaf_budget.daily_counter" in s and "window_counter" in s for s in statements)


async def test_postgres_lone_caller_is_one_statement_at_once(pg_engine: AsyncEngine, clock: ManualClock) -> None:
    budget = PostgresBudget(pg_engine, BudgetLimits(), clock)
    await budget.acquire(BudgetKind.API)  # warm up (first prune runs in the background)
    await asyncio.sleep(0.05)
    seen = _count_statements(pg_engine)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await budget.acquire(BudgetKind.EF_DOWNLOAD, "3001503294")
    assert loop.time() - started < 0.5  # no batching timer
    assert len(seen) == 1 and _takes(seen) == 1 and budget.flushes == 2


async def test_postgres_group_commit_serves_many_callers_per_statement(
    pg_engine: AsyncEngine, clock: ManualClock
) -> None:
    budget = PostgresBudget(pg_engine, BudgetLimits(per_minute=10_000), clock)
    await budget.acquire(BudgetKind.API)
    await asyncio.sleep(0.05)
    seen = _count_statements(pg_engine)
    flushes = budget.flushes
    n = 200
    await asyncio.gather(*(budget.acquire(BudgetKind.EF_DOWNLOAD, f"m{i}") for i in range(n)))
    assert budget.flushes - flushes <= 5, budget.flushes - flushes  # not 200 (or 400) transactions
    assert _takes(seen) == budget.flushes - flushes and len(seen) <= 5
    assert await budget.remaining(BudgetKind.API) == 10_000 - n - 1
    assert [await budget.remaining(BudgetKind.EF_DOWNLOAD, f"m{i}") for i in (0, 99, 199)] == [9, 9, 9]


async def test_postgres_serves_interactive_callers_first_within_a_flush(
    pg_engine: AsyncEngine, clock: ManualClock
) -> None:
    budget = PostgresBudget(pg_engine, BudgetLimits(per_minute=10, interactive_reserve=3), clock)
    for _ in range(6):
        await budget.acquire(BudgetKind.API)
    flushes = budget.flushes
    # Created in one tick: the bulk calls queue first, yet the 4 interactive ones get the 4 free slots.
    bulk = [asyncio.create_task(budget.acquire(BudgetKind.API)) for _ in range(5)]
    inter = [asyncio.create_task(budget.acquire(BudgetKind.API, priority=Priority.INTERACTIVE)) for _ in range(4)]
    await asyncio.wait_for(asyncio.gather(*inter), 10)
    await settle(lambda: clock.sleepers == 5)
    assert budget.flushes - flushes == 1 and not any(t.done() for t in bulk)
    clock.advance(60)
    await asyncio.wait_for(asyncio.gather(*bulk), 10)


async def test_postgres_database_errors_reach_every_caller(pg_dsn: str, clock: ManualClock) -> None:
    engine = create_async_engine(pg_dsn.rsplit("/", 1)[0] + "/anaf_budget_no_such_database")
    try:
        budget = PostgresBudget(engine, BudgetLimits(), clock)
        results = await asyncio.wait_for(
            asyncio.gather(*(budget.acquire(BudgetKind.EF_DOWNLOAD, str(i)) for i in range(5)),
                           return_exceptions=True), 20)
        assert all(isinstance(r, Exception) and not isinstance(r, BudgetExhausted) for r in results), results
        with pytest.raises(Exception):  # noqa: B017 - the driver's error, whichever it is
            await asyncio.wait_for(budget.acquire(BudgetKind.API), 20)
    finally:
        await engine.dispose()


@pytest_asyncio.fixture
async def second_engine(pg_dsn: str, pg_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """Another engine (its own pool) on the same database: a second process."""
    engine = create_async_engine(pg_dsn, pool_size=10, max_overflow=60)
    yield engine
    await engine.dispose()


async def test_postgres_daily_caps_exact_across_two_processes(
    pg_engine: AsyncEngine, second_engine: AsyncEngine, clock: ManualClock
) -> None:
    limits = BudgetLimits(per_minute=10_000, daily={BudgetKind.EF_DOWNLOAD: 10, BudgetKind.EF_LIST: 25})
    a, b = PostgresBudget(pg_engine, limits, clock), PostgresBudget(second_engine, limits, clock)
    calls = [(BudgetKind.EF_DOWNLOAD, f"300150329{i % 4}") for i in range(160)]
    calls += [(BudgetKind.EF_LIST, "8000000000")] * 80
    random.Random(7).shuffle(calls)
    results = await asyncio.gather(
        *((a if i % 2 else b).acquire(k, key) for i, (k, key) in enumerate(calls)), return_exceptions=True
    )
    ok: dict[str, int] = {}
    for (_, key), r in zip(calls, results, strict=True):
        assert r is None or isinstance(r, BudgetExhausted), r
        ok[key] = ok.get(key, 0) + (r is None)
    assert ok == {"3001503290": 10, "3001503291": 10, "3001503292": 10, "3001503293": 10, "8000000000": 25}
    assert await a.remaining(BudgetKind.API) == 10_000 - 65
    assert a.flushes + b.flushes < len(calls) / 4


async def test_postgres_window_never_exceeded_across_two_processes(
    pg_engine: AsyncEngine, second_engine: AsyncEngine, clock: ManualClock
) -> None:
    limits = BudgetLimits(per_minute=30, interactive_reserve=5)
    a, b = PostgresBudget(pg_engine, limits, clock), PostgresBudget(second_engine, limits, clock)
    bulk = [asyncio.create_task((a if i % 2 else b).acquire(BudgetKind.EF_LIST_PAGED, "1")) for i in range(80)]
    await settle(lambda: sum(t.done() for t in bulk) + clock.sleepers == 80)
    assert sum(t.done() for t in bulk) == 25  # bulk stops at per_minute - reserve, across both processes
    inter = [
        asyncio.create_task((a if i % 2 else b).acquire(BudgetKind.API, priority=Priority.INTERACTIVE))
        for i in range(8)
    ]
    await settle(lambda: sum(t.done() for t in bulk + inter) + clock.sleepers == 88)
    assert sum(t.done() for t in inter) == 5 and await a.remaining(BudgetKind.API) == 0
    async with pg_engine.connect() as conn:
        n = (await conn.exec_driver_sql("SELECT max(n) FROM anaf_budget.window_counter")).scalar_one()
    assert n == 30
    for _ in range(3):  # 58 waiting: at most 30 a window, at most 25 of them bulk
        before = sum(t.done() for t in bulk + inter)
        clock.advance(60)
        await settle(lambda: sum(t.done() for t in bulk + inter) + clock.sleepers == 88)
        assert sum(t.done() for t in bulk + inter) - before <= 30
        assert await a.remaining(BudgetKind.API) >= 0
    async with pg_engine.connect() as conn:
        per_window = [r[0] for r in await conn.exec_driver_sql(
            "SELECT n FROM anaf_budget.window_counter ORDER BY window_start_ms")]
    assert all(n <= 30 for n in per_window) and sum(per_window) == sum(t.done() for t in bulk + inter)
    for t in bulk + inter:
        t.cancel()
    await asyncio.gather(*bulk, *inter, return_exceptions=True)


async def test_postgres_schema_upgrade_adds_last_grant(pg_engine: AsyncEngine, clock: ManualClock) -> None:
    async with pg_engine.begin() as conn:  # a database of the first release
        for table in ("window_counter", "daily_counter"):
            await conn.exec_driver_sql(f"ALTER TABLE anaf_budget.{table} DROP COLUMN last_grant")
        await conn.exec_driver_sql(
            "INSERT INTO anaf_budget.daily_counter (kind, key, day, n) VALUES ('efactura.descarcare', '1', "
            "'2026-01-15', 4)"
        )
    await ensure_schema(pg_engine)
    budget = PostgresBudget(pg_engine, BudgetLimits(), clock)
    await budget.acquire(BudgetKind.EF_DOWNLOAD, "1")
    assert await budget.remaining(BudgetKind.EF_DOWNLOAD, "1") == 5
