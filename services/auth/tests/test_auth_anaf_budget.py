"""The OAuth callback spends the shared ANAF budget at interactive priority: a sync that filled its (bulk) share
of the api.anaf.ro window does not make the person wait for the next minute."""
from __future__ import annotations

import asyncio

from spvhub_common.anaf import BudgetKind, BudgetLimits, InMemoryBudget, ManualClock

CIF = "1000017"


async def test_callback_uses_the_interactive_reserve_after_a_sync_filled_the_window(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    clock = ManualClock(h.clock.now())  # the budget's clock only moves when told: a wait would never end
    budget = InMemoryBudget(BudgetLimits(per_minute=10, interactive_reserve=3), clock)
    h.deps.anaf.budget = budget
    for _ in range(7):  # a sync's bulk share of this minute is spent
        await budget.acquire(BudgetKind.EF_DOWNLOAD, "3001503294")
    sync_call = asyncio.create_task(budget.acquire(BudgetKind.API))
    for _ in range(100):
        await asyncio.sleep(0)
    assert clock.sleepers == 1 and not sync_call.done()  # the sync waits for the next minute ...
    user = await h.signup()
    await h.grant(user["user"]["id"], CIF)
    r = await asyncio.wait_for(h.authorize(user["headers"], CIF), 30)  # ... the person does not
    assert r.status_code == 200, r.text
    assert r.json()["rights_checked"] is True
    # The rights check spent exactly one window slot and one of the CIF's daily list calls.
    assert await budget.remaining(BudgetKind.API) == 2
    assert await budget.remaining(BudgetKind.EF_LIST, CIF) == 1499
    sync_call.cancel()
