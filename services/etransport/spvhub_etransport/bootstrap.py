"""Composition root of the etransport service: the only place that builds engines, clients and adapters.

Tests override the clock, the HTTP transports to ANAF and auth, the budget, or the ports themselves."""
from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI
from spvhub_common.anaf import AnafBudget, AnafClient
from spvhub_common.clock import Clock, make_clock
from spvhub_common.http import create_app
from spvhub_common.runtime import ServiceRuntime
from spvhub_common.tokens import InternalTokenClient, TokenSource

from spvhub_etransport import consumers, jobs
from spvhub_etransport.adapters.anaf import AnafClientEtransportApi, EtransportApi
from spvhub_etransport.adapters.orm import outbox
from spvhub_etransport.api import router
from spvhub_etransport.handlers import Deps
from spvhub_etransport.settings import Settings, get_settings


def anaf_api(settings: Settings, budget: AnafBudget, clock: Clock,
             transport: httpx.AsyncBaseTransport | None = None) -> AnafClientEtransportApi:
    """The e-Transport reads over the shared ANAF client, on the four host bases of `settings`."""
    return AnafClientEtransportApi(AnafClient(settings.anaf_config(read_timeout=settings.anaf_timeout), budget,
                                              transport=transport, clock=clock))


# The connection statuses auth reports for a connection it calls live; any other is treated as needing a new
# authorization.
USABLE_STATUSES = ("active", "ok", "valid", "expiring")


def auth_tokens(settings: Settings, runtime: ServiceRuntime, clock: Clock,
                transport: httpx.AsyncBaseTransport | None = None) -> InternalTokenClient:
    """ANAF tokens from auth through the platform's one client, reused until 5 minutes before they expire by the
    platform clock (auth stays their owner; a refresh drops them)."""
    client = InternalTokenClient(settings.auth_url, settings.service_token.get_secret_value(), "etransport",
                                 transport=transport, max_age=float("inf"), expiry_margin=timedelta(minutes=5),
                                 now=clock.now, usable_statuses=USABLE_STATUSES)
    runtime.on_stop(client.aclose)
    return client


def build(settings: Settings | None = None, *, clock: Clock | None = None,
          anaf_transport: httpx.AsyncBaseTransport | None = None,
          auth_transport: httpx.AsyncBaseTransport | None = None,
          anaf: EtransportApi | None = None, tokens: TokenSource | None = None,
          budget: AnafBudget | None = None, **runtime_kw: bool) -> tuple[FastAPI, ServiceRuntime]:
    settings = settings or get_settings()
    runtime = ServiceRuntime(settings, outbox, **runtime_kw)
    # the platform clock (the emulator's in dev/test): daily limits reset at the same midnight as the emulator's
    clock = clock or make_clock(settings.clock_url)

    if anaf is None:
        api = anaf_api(settings, budget or runtime.anaf_budget(clock=clock), clock, anaf_transport)
        runtime.on_stop(api.client.aclose)
        anaf = api
    if tokens is None:
        tokens = auth_tokens(settings, runtime, clock, auth_transport)

    deps = Deps(settings=settings, clock=clock, uow=runtime.uow, anaf=anaf, tokens=tokens)
    consumers.register(runtime, deps)
    jobs.register(runtime, deps)

    app = create_app(settings, title="spvhub etransport",
                     description="e-Transport carrier view: transports where a company is the carrier, "
                                 "with UIT history.", routers=[router], lifespan=runtime.lifespan())
    app.state.deps = deps
    app.state.runtime = runtime
    return app, runtime


def build_app() -> FastAPI:
    return build()[0]
