"""PDF rendering runs in worker processes with a deadline: an overrun is a 503 `pdf_render_timeout` (the worker
is terminated, not left burning a core) and the next render works on a fresh pool; while a heavy render runs,
the event loop of the service stays free."""
from __future__ import annotations

import asyncio
import time

import pytest
from pdf_invoices import ron_with_allowances
from spvhub_common.errors import AppError
from spvhub_efactura import pdfworker


async def test_a_render_past_its_deadline_is_503_and_the_next_render_works() -> None:
    xml = ron_with_allowances()
    first = await pdfworker.render(xml, message_id="1", deadline=60)  # a spawned worker's start included
    assert first.startswith(b"%PDF")
    with pytest.raises(AppError) as refused:
        await pdfworker.render(xml, message_id="2", deadline=0.001)
    assert refused.value.status == 503 and refused.value.code == "pdf_render_timeout"
    again = await pdfworker.render(xml, message_id="3", deadline=60)
    assert again.startswith(b"%PDF")


async def test_the_event_loop_stays_free_while_documents_render() -> None:
    xml = ron_with_allowances()
    await pdfworker.render(xml, deadline=60)  # workers started
    renders = asyncio.gather(*(pdfworker.render(xml, deadline=60) for _ in range(6)))
    worst = 0.0
    while not renders.done():
        t0 = time.perf_counter()
        await asyncio.sleep(0.005)
        worst = max(worst, time.perf_counter() - t0)
    assert all(p.startswith(b"%PDF") for p in await renders)
    assert worst < 0.25, f"the loop was held {worst:.3f} s"


def teardown_module() -> None:
    pdfworker.shutdown()
