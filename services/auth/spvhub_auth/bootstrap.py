"""Composition root of the auth service: the only place that builds engines, clients and adapters."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from argon2 import PasswordHasher
from fastapi import FastAPI
from spvhub_common.access import apply_access_changed
from spvhub_common.anaf import AnafClient, Priority, UnlimitedBudget
from spvhub_common.anaf.budget import AnafBudget, PostgresBudget, ensure_schema
from spvhub_common.anaf.clock import SystemClock as AnafSystemClock
from spvhub_common.clock import Clock, make_clock
from spvhub_common.crypto import SecretBox
from spvhub_common.db import create_engine, ensure_database
from spvhub_common.events.portfolio import AccessChanged
from spvhub_common.http import create_app
from spvhub_common.runtime import ServiceRuntime

from spvhub_auth.adapters.anaf import AnafGateway, ClientAnafGateway
from spvhub_auth.adapters.keys import KeyRing, KeyRingVerifier
from spvhub_auth.adapters.orm import access_grants, outbox
from spvhub_auth.api import internal, router, wellknown
from spvhub_auth.handlers import Deps
from spvhub_auth.jobs import lifecycle_job
from spvhub_auth.settings import Settings, get_settings


def anaf_gateway(settings: Settings, budget: AnafBudget | None,
                 transport: httpx.AsyncBaseTransport | None = None) -> ClientAnafGateway:
    """auth's port to ANAF over the shared client: the four host bases of `settings`, the OAuth application, and
    interactive priority (a person or a service waits on every call)."""
    config = settings.anaf_config(client_id=settings.anaf_client_id, client_secret=settings.anaf_client_secret,
                                  redirect_uri=settings.redirect_uri, read_timeout=settings.anaf_http_timeout)
    return ClientAnafGateway(AnafClient(config, budget or UnlimitedBudget(), transport=transport,
                                        priority=Priority.INTERACTIVE))


def build(settings: Settings | None = None, *, clock: Clock | None = None,
          anaf_transport: httpx.AsyncBaseTransport | None = None, anaf: AnafGateway | None = None,
          budget: AnafBudget | None | bool = None, hasher: PasswordHasher | None = None,
          **runtime_kw: bool) -> tuple[FastAPI, ServiceRuntime]:
    """Production defaults; tests override the clock, the ANAF transport (emulator in-process), the gateway,
    the budget (`False` = none) or the password hasher."""
    settings = settings or get_settings()
    runtime = ServiceRuntime(settings, outbox, **runtime_kw)
    clock = clock or make_clock(settings.clock_url)
    box = SecretBox.from_config(settings.token_key_spec.get_secret_value(), settings.token_key_active)
    ring = KeyRing(runtime.engine, box, clock)
    shared_budget: AnafBudget | None = None
    budget_engine = None
    if budget is None:
        # ANAF's limits are wall-clock limits, shared by every service through one database.
        budget_engine = create_engine(settings, settings.anaf_budget_database)
        shared_budget = PostgresBudget(budget_engine, clock=AnafSystemClock())
    elif budget is not False:
        shared_budget = budget  # type: ignore[assignment]
    gateway = anaf or anaf_gateway(settings, shared_budget, anaf_transport)
    deps = Deps(settings=settings, uow=runtime.uow, clock=clock, ring=ring, box=box, anaf=gateway,
                hasher=hasher or PasswordHasher())

    async def on_access_changed(ev: Any, _env: Any, uow: Any) -> None:
        await apply_access_changed(uow.session, access_grants, ev)
    runtime.consumer("auth.access-read-model").route(AccessChanged, on_access_changed)
    runtime.add_job(lifecycle_job(deps))

    async def startup(app: FastAPI) -> None:
        if budget_engine is not None:
            await ensure_database(settings, settings.anaf_budget_database)
            await ensure_schema(budget_engine)
        await ring.ensure()  # first start: generate the signing key (stored encrypted)
        app.state.jwks = KeyRingVerifier(ring, settings.jwt_issuer, settings.jwt_audience)

    async def shutdown() -> None:
        if isinstance(gateway, ClientAnafGateway):
            await gateway.aclose()
        if budget_engine is not None:
            await budget_engine.dispose()

    inner = runtime.lifespan(startup)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with inner(app):
                yield
        finally:
            await shutdown()

    app = create_app(settings, title="spvhub auth",
                     description="Platform accounts, API credentials, JWT signing keys and ANAF connections "
                                 "(tokens encrypted at rest).",
                     routers=[router, internal, wellknown], lifespan=lifespan)
    app.state.deps = deps
    return app, runtime


def build_app() -> FastAPI:
    return build()[0]
