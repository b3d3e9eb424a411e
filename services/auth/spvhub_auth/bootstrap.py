"""Composition root of the auth service: the only place that builds engines, clients and adapters."""
from __future__ import annotations

import httpx
from argon2 import PasswordHasher
from fastapi import FastAPI
from spvhub_common.anaf import AnafClient, Priority, UnlimitedBudget
from spvhub_common.anaf.budget import AnafBudget
from spvhub_common.clock import Clock, make_clock
from spvhub_common.crypto import SecretBox
from spvhub_common.http import create_app
from spvhub_common.runtime import ServiceRuntime

from spvhub_auth import consumers, jobs
from spvhub_auth.adapters.anaf import AnafGateway, ClientAnafGateway
from spvhub_auth.adapters.keys import KeyRing, KeyRingVerifier
from spvhub_auth.adapters.orm import outbox
from spvhub_auth.api import internal, router, wellknown
from spvhub_auth.handlers import Deps
from spvhub_auth.settings import Settings, get_settings


def anaf_gateway(settings: Settings, budget: AnafBudget | None,
                 transport: httpx.AsyncBaseTransport | None = None) -> ClientAnafGateway:
    """auth's port to ANAF over the shared client: the four host bases of `settings`, the OAuth application, and
    interactive priority (a person or a service waits on every call)."""
    config = settings.anaf_config(client_id=settings.anaf_client_id, client_secret=settings.anaf_client_secret,
                                  redirect_uri=settings.redirect_uri, read_timeout=settings.anaf_http_timeout)
    return ClientAnafGateway(AnafClient(config, budget or UnlimitedBudget(), transport=transport,
                                        priority=Priority.INTERACTIVE))


def _gateway(runtime: ServiceRuntime, settings: Settings, budget: AnafBudget | None | bool,
             transport: httpx.AsyncBaseTransport | None) -> ClientAnafGateway:
    """The gateway over the platform's shared budget (`budget` None), a given one, or none (`False`)."""
    shared: AnafBudget | None = None
    if budget is None:
        shared = runtime.anaf_budget()  # ANAF counts every call of the platform: one budget for all services
    elif budget is not False and budget is not True:
        shared = budget
    gateway = anaf_gateway(settings, shared, transport)
    runtime.on_stop(gateway.aclose)
    return gateway


def _serve_signing_keys(runtime: ServiceRuntime, app: FastAPI, ring: KeyRing, settings: Settings) -> None:
    async def start() -> None:
        await ring.ensure()  # first start: generate the signing key (stored encrypted)
        app.state.jwks = KeyRingVerifier(ring, settings.jwt_issuer, settings.jwt_audience)
    runtime.on_start(start)


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
    gateway = anaf or _gateway(runtime, settings, budget, anaf_transport)
    deps = Deps(settings=settings, uow=runtime.uow, clock=clock, ring=ring, box=box, anaf=gateway,
                hasher=hasher or PasswordHasher())
    consumers.register(runtime, deps)
    jobs.register(runtime, deps)

    app = create_app(settings, title="spvhub auth",
                     description="Platform accounts, API credentials, JWT signing keys and ANAF connections "
                                 "(tokens encrypted at rest).",
                     routers=[router, internal, wellknown], lifespan=runtime.lifespan())
    _serve_signing_keys(runtime, app, ring, settings)
    app.state.deps = deps
    app.state.runtime = runtime
    return app, runtime


def build_app() -> FastAPI:
    return build()[0]
