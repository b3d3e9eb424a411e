"""Composition root of the portfolio service: the only place that builds engines, clients and adapters.

Tests override the ANAF and auth HTTP transports (the in-process emulator, a fake auth), the clock and the
budget; production uses the defaults from settings.
"""
from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI
from spvhub_common.anaf import AnafClient
from spvhub_common.anaf.budget import AnafBudget
from spvhub_common.clock import Clock, SystemClock, make_clock
from spvhub_common.http import create_app
from spvhub_common.pii import PersonIds
from spvhub_common.runtime import ServiceRuntime
from spvhub_common.tokens import InternalTokenClient

from spvhub_portfolio import consumers, jobs
from spvhub_portfolio.adapters.anaf import AuthTokens, ClientAnaf, RegistryPort, TokenPort
from spvhub_portfolio.adapters.orm import outbox
from spvhub_portfolio.api import router
from spvhub_portfolio.handlers import Deps
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
    anaf = anaf_adapter(settings, budget or runtime.anaf_budget(), anaf_transport)
    auth = InternalTokenClient(settings.auth_url, settings.service_token.get_secret_value(), "portfolio",
                               transport=auth_transport, timeout=15)
    runtime.on_stop(anaf.aclose)
    runtime.on_stop(auth.aclose)
    deps = Deps(uow=runtime.uow, registry=registry or anaf, efactura=anaf,
                tokens=tokens or AuthTokens(auth),
                clock=clock or make_clock(settings.clock_url),
                registry_max_age=timedelta(seconds=settings.registry_max_age_seconds),
                recheck_interval=timedelta(seconds=settings.rights_recheck_interval_seconds),
                retry_incomplete_after=timedelta(seconds=settings.rights_retry_incomplete_seconds),
                probe_concurrency=settings.probe_concurrency, jobs_tick_seconds=settings.jobs_tick_seconds,
                pii=PersonIds.from_settings(settings))
    consumers.register(runtime, deps)
    jobs.register(runtime, deps)
    app = create_app(settings, title="spvhub portfolio",
                     description="Companies, memberships, the accounting-firm flag, discovered SPV rights, "
                                 "collaborations and access scoping.", routers=[router], lifespan=runtime.lifespan())
    app.state.deps = deps
    app.state.runtime = runtime
    return app, runtime


def build_app() -> FastAPI:
    return build()[0]


__all__ = ["anaf_adapter", "build", "build_app"]
