"""Composition root of the etransport service: the only place that builds engines, clients and adapters.

Tests override the clock, the HTTP transports to ANAF and auth, the budget and the runtime switches."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI
from spvhub_common.access import apply_access_changed
from spvhub_common.anaf.budget import AnafBudget, PostgresBudget, ensure_schema
from spvhub_common.clock import Clock, make_clock
from spvhub_common.events.portfolio import AccessChanged
from spvhub_common.http import create_app
from spvhub_common.runtime import ServiceRuntime

from spvhub_etransport.adapters.anaf import EtransportApi, HttpEtransportApi
from spvhub_etransport.adapters.auth import AuthTokenProvider, TokenProvider
from spvhub_etransport.adapters.orm import access_grants, outbox
from spvhub_etransport.api import router
from spvhub_etransport.consumers import register_consumers
from spvhub_etransport.handlers import EtransportService
from spvhub_etransport.jobs import poll_job
from spvhub_etransport.settings import Settings, get_settings


class _BudgetClock:
    """Adapts the platform clock (now) to the budget's clock protocol (now + sleep)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> Any:
        return self._clock.now()

    async def sleep(self, seconds: float) -> None:
        import asyncio
        await asyncio.sleep(max(0.0, min(seconds, 5.0)))


def build(settings: Settings | None = None, *, clock: Clock | None = None,
          anaf_transport: httpx.AsyncBaseTransport | None = None,
          auth_transport: httpx.AsyncBaseTransport | None = None,
          anaf: EtransportApi | None = None, tokens: TokenProvider | None = None,
          budget: AnafBudget | Callable[[ServiceRuntime], AnafBudget] | None = None,
          **runtime_kw: bool) -> tuple[FastAPI, ServiceRuntime]:
    settings = settings or get_settings()
    runtime = ServiceRuntime(settings, outbox, **runtime_kw)
    clock = clock or make_clock(settings.clock_url)

    if budget is None:
        the_budget: AnafBudget = PostgresBudget(runtime.engine, clock=_BudgetClock(clock))
    elif callable(budget) and not isinstance(budget, AnafBudget):
        the_budget = budget(runtime)
    else:
        the_budget = budget  # type: ignore[assignment]
    anaf_client = httpx.AsyncClient(transport=anaf_transport, timeout=settings.anaf_timeout)
    auth_client = httpx.AsyncClient(transport=auth_transport, timeout=10)
    anaf = anaf or HttpEtransportApi(anaf_client, settings.anaf_base, settings.anaf_env, the_budget,
                                   now=clock.now)
    tokens = tokens or AuthTokenProvider(auth_client, settings.auth_url, settings.service_token.get_secret_value(),
                                         now=clock.now)
    svc = EtransportService(settings, clock, runtime.uow, anaf, tokens)

    async def on_access_changed(ev, _env, uow) -> None:  # type: ignore[no-untyped-def]
        await apply_access_changed(uow.session, access_grants, ev)
    runtime.consumer("etransport.access-read-model").route(AccessChanged, on_access_changed)
    register_consumers(runtime, svc)
    runtime.add_job(poll_job(svc))

    async def on_start(app: FastAPI) -> None:
        if isinstance(the_budget, PostgresBudget):
            await ensure_schema(runtime.engine)

    app = create_app(settings, title="spvhub etransport",
                     description="e-Transport carrier view: transports where a company is the carrier, "
                                 "with UIT history.", routers=[router], lifespan=runtime.lifespan(on_start))
    app.state.etransport = svc
    app.state.http_clients = (anaf_client, auth_client)
    return app, runtime


def build_app() -> FastAPI:
    return build()[0]
