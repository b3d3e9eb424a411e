"""Composition root of the etransport service: the only place that builds engines, clients and adapters.

Tests override the clock, the HTTP transports to ANAF and auth, the budget, or the ports themselves."""
from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
from fastapi import FastAPI
from spvhub_common.anaf import AnafBudget, AnafClient, PostgresBudget, ensure_schema
from spvhub_common.clock import Clock, make_clock
from spvhub_common.db import create_engine, ensure_database
from spvhub_common.http import create_app
from spvhub_common.runtime import ServiceRuntime

from spvhub_etransport import consumers, jobs
from spvhub_etransport.adapters.anaf import AnafClientEtransportApi, EtransportApi
from spvhub_etransport.adapters.auth import AuthTokenProvider, TokenProvider
from spvhub_etransport.adapters.orm import outbox
from spvhub_etransport.api import router
from spvhub_etransport.handlers import Deps
from spvhub_etransport.settings import Settings, get_settings


class AnafClock:
    """The platform clock (which follows the emulator in dev/test) with the `sleep` the ANAF client and budget
    need; daily limits then reset at the same midnight as the emulator's."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> datetime:
        return self._clock.now()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, min(seconds, 5.0)))


def anaf_api(settings: Settings, budget: AnafBudget, clock: AnafClock,
             transport: httpx.AsyncBaseTransport | None = None) -> AnafClientEtransportApi:
    """The e-Transport reads over the shared ANAF client, on the four host bases of `settings`."""
    return AnafClientEtransportApi(AnafClient(settings.anaf_config(read_timeout=settings.anaf_timeout), budget,
                                              transport=transport, clock=clock))


def build(settings: Settings | None = None, *, clock: Clock | None = None,
          anaf_transport: httpx.AsyncBaseTransport | None = None,
          auth_transport: httpx.AsyncBaseTransport | None = None,
          anaf: EtransportApi | None = None, tokens: TokenProvider | None = None,
          budget: AnafBudget | None = None, **runtime_kw: bool) -> tuple[FastAPI, ServiceRuntime]:
    settings = settings or get_settings()
    runtime = ServiceRuntime(settings, outbox, **runtime_kw)
    clock = clock or make_clock(settings.clock_url)
    anaf_clock = AnafClock(clock)

    budget_engine = None
    if budget is None:
        # one budget for every service and replica: ANAF's limits count all of the platform's calls
        budget_engine = create_engine(settings, settings.anaf_budget_database)
        budget = PostgresBudget(budget_engine, clock=anaf_clock)
    api = anaf_api(settings, budget, anaf_clock, anaf_transport)
    auth_client = httpx.AsyncClient(transport=auth_transport, timeout=10)
    tokens = tokens or AuthTokenProvider(auth_client, settings.auth_url, settings.service_token.get_secret_value(),
                                         now=clock.now)
    deps = Deps(settings=settings, clock=clock, uow=runtime.uow, anaf=anaf or api, tokens=tokens)
    consumers.register(runtime, deps)
    jobs.register(runtime, deps)

    async def on_start(app: FastAPI) -> None:
        if budget_engine is not None:
            await ensure_database(settings, settings.anaf_budget_database)
            await ensure_schema(budget_engine)

    async def on_stop(app: FastAPI) -> None:
        try:
            await api.client.aclose()
            await auth_client.aclose()
        finally:
            if budget_engine is not None:
                await budget_engine.dispose()

    app = create_app(settings, title="spvhub etransport",
                     description="e-Transport carrier view: transports where a company is the carrier, "
                                 "with UIT history.", routers=[router],
                     lifespan=runtime.lifespan(on_start, on_stop=on_stop))
    app.state.deps = deps
    app.state.runtime = runtime
    return app, runtime


def build_app() -> FastAPI:
    return build()[0]
