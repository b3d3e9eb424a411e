"""Composition root of the portfolio service: the only place that builds engines, clients and adapters.

Tests override the ANAF and auth HTTP transports (the in-process emulator, a fake auth), the clock and the
budget; production uses the defaults from settings.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from spvhub_common.access import apply_access_changed
from spvhub_common.anaf import AnafClient
from spvhub_common.anaf.budget import AnafBudget, PostgresBudget, ensure_schema
from spvhub_common.anaf.clock import SystemClock
from spvhub_common.clock import Clock, make_clock
from spvhub_common.db import create_engine, ensure_database
from spvhub_common.events.portfolio import AccessChanged
from spvhub_common.http import create_app
from spvhub_common.runtime import ServiceRuntime

from spvhub_portfolio.adapters.anaf import AuthTokens, ClientAnaf, RegistryPort, TokenPort
from spvhub_portfolio.adapters.orm import access_grants, outbox
from spvhub_portfolio.api import router
from spvhub_portfolio.consumers import register_consumers
from spvhub_portfolio.handlers import Deps
from spvhub_portfolio.jobs import register_jobs
from spvhub_portfolio.settings import Settings, get_settings


def anaf_adapter(settings: Settings, budget: AnafBudget,
                 transport: httpx.AsyncBaseTransport | None = None) -> ClientAnaf:
    """The registry and list ports over the shared ANAF client, on the four host bases of `settings`."""
    return ClientAnaf(AnafClient(settings.anaf_config(read_timeout=30.0), budget, transport=transport,
                                 clock=SystemClock()))


def build(settings: Settings | None = None, *, anaf_transport: httpx.AsyncBaseTransport | None = None,
          auth_transport: httpx.AsyncBaseTransport | None = None, clock: Clock | None = None,
          budget: AnafBudget | None = None, registry: RegistryPort | None = None, tokens: TokenPort | None = None,
          **runtime_kw: bool) -> tuple[FastAPI, ServiceRuntime]:
    settings = settings or get_settings()
    runtime = ServiceRuntime(settings, outbox, **runtime_kw)

    async def on_access_changed(ev, _env, uow) -> None:  # type: ignore[no-untyped-def]
        await apply_access_changed(uow.session, access_grants, ev)
    runtime.consumer("portfolio.access-read-model").route(AccessChanged, on_access_changed)

    clock = clock or make_clock(settings.clock_url)
    budget_engine = None
    if budget is None:
        # ANAF's limits are wall-clock limits: the budget runs on the system clock, shared through PostgreSQL.
        budget_engine = (create_engine(settings, settings.anaf_budget_database) if settings.anaf_budget_database
                         else runtime.engine)
        budget = PostgresBudget(budget_engine, clock=SystemClock())
    anaf = anaf_adapter(settings, budget, anaf_transport)
    auth_http = httpx.AsyncClient(base_url=settings.auth_url, transport=auth_transport, timeout=15)
    deps = Deps(registry=registry or anaf, efactura=anaf,
                tokens=tokens or AuthTokens(auth_http, settings.service_token.get_secret_value()), clock=clock,
                registry_max_age=timedelta(seconds=settings.registry_max_age_seconds),
                recheck_interval=timedelta(seconds=settings.rights_recheck_interval_seconds),
                retry_incomplete_after=timedelta(seconds=settings.rights_retry_incomplete_seconds),
                probe_concurrency=settings.probe_concurrency)
    register_consumers(runtime, deps)
    register_jobs(runtime, deps, settings.jobs_tick_seconds)

    inner = runtime.lifespan()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if budget_engine is not None:
            if settings.anaf_budget_database:
                await ensure_database(settings, settings.anaf_budget_database)
            await ensure_schema(budget_engine)
        async with inner(app):
            yield
        await anaf.aclose()
        await auth_http.aclose()
        if budget_engine is not None and budget_engine is not runtime.engine:
            await budget_engine.dispose()

    app = create_app(settings, title="spvhub portfolio",
                     description="Companies, memberships, the accounting-firm flag, discovered SPV rights, "
                                 "collaborations and access scoping.", routers=[router], lifespan=lifespan)
    app.state.runtime = runtime
    app.state.portfolio_deps = deps
    app.state.clients = {"anaf": anaf.client, "auth": auth_http}
    return app, runtime


def build_app() -> FastAPI:
    return build()[0]


__all__: list[Any] = ["build", "build_app"]
