"""PDF rendering in worker processes with a deadline, so one tenant's document cannot hold the event loop or the
GIL of the process that answers everyone else. A render past its deadline is a 503 `pdf_render_timeout`: the
workers are terminated (a thread could not be) and a fresh pool takes the next render."""
from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime

from spvhub_common.errors import AppError

# seconds one render may take, queueing for a worker included; the largest document the renderer accepts (its
# caps on field lengths and lines) renders in well under this on one core
RENDER_TIMEOUT = float(os.environ.get("SPVHUB_PDF_RENDER_TIMEOUT", "20"))
WORKERS = int(os.environ.get("SPVHUB_PDF_WORKERS", "2"))

_pool: ProcessPoolExecutor | None = None
_slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


class RenderFailed(Exception):
    """The renderer refused the document (raised in the worker, re-raised here with its message)."""


def _render(xml: bytes, message_id: str | None, listed_at: datetime | str | None) -> bytes:
    from spvhub_efactura.pdf import render_pdf
    return render_pdf(xml, message_id=message_id, listed_at=listed_at)


def _get_pool() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        # spawn: the service's threads (Saxon's, the loop's executor) do not survive a fork
        _pool = ProcessPoolExecutor(max_workers=WORKERS, mp_context=multiprocessing.get_context("spawn"))
    return _pool


def _discard_pool() -> None:
    global _pool
    pool, _pool = _pool, None
    if pool is None:
        return
    for proc in list(getattr(pool, "_processes", {}).values()):
        proc.terminate()  # the render that overran is stopped, not left to burn a core
    pool.shutdown(wait=False, cancel_futures=True)


def _timed_out(timeout: float) -> AppError:
    return AppError(f"Rendering the PDF took longer than {timeout:g} s; the archived XML and the signed ZIP "
                    "are available.", code="pdf_render_timeout", status=503,
                    messages={"ro": f"Generarea PDF-ului a durat mai mult de {timeout:g} s; XML-ul arhivat și "
                                    "ZIP-ul semnat sunt disponibile."},
                    details={"timeout_seconds": timeout})


async def render(xml: bytes, *, message_id: str | None = None, listed_at: datetime | str | None = None,
                 deadline: float | None = None) -> bytes:
    timeout = RENDER_TIMEOUT if deadline is None else deadline
    loop = asyncio.get_running_loop()
    slots = _slots.setdefault(loop, asyncio.Semaphore(WORKERS))

    async def run() -> bytes:
        async with slots:  # at most WORKERS renders at once; the others wait, within the same deadline
            return await loop.run_in_executor(_get_pool(), _render, xml, message_id, listed_at)

    try:
        return await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        _discard_pool()
        raise _timed_out(timeout) from None
    except BrokenProcessPool as e:  # a worker ended under it (terminated after another render's overrun)
        _discard_pool()
        raise AppError("The PDF renderer restarted; try again.", code="pdf_renderer_restarted", status=503,
                       messages={"ro": "Generatorul de PDF a repornit; încercați din nou."},
                       details={"retry_after_seconds": 1}) from e


def shutdown() -> None:
    _discard_pool()
