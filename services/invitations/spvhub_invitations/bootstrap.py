"""Composition root of the invitations service: the only place that builds engines, clients and adapters."""
from __future__ import annotations

from fastapi import FastAPI
from spvhub_common.clock import Clock, make_clock
from spvhub_common.http import create_app
from spvhub_common.pii import PersonIds
from spvhub_common.runtime import ServiceRuntime

from spvhub_invitations import consumers, jobs
from spvhub_invitations.adapters.orm import outbox
from spvhub_invitations.api import internal, router
from spvhub_invitations.handlers import Deps
from spvhub_invitations.settings import Settings, get_settings


def build(settings: Settings | None = None, *, clock: Clock | None = None,
          **runtime_kw: bool) -> tuple[FastAPI, ServiceRuntime]:
    settings = settings or get_settings()
    runtime = ServiceRuntime(settings, outbox, **runtime_kw)

    deps = Deps(uow=runtime.uow, clock=clock or make_clock(settings.clock_url),
                token_key=settings.invitation_token_key.get_secret_value().encode(),
                public_base_url=settings.ui_base_url or settings.public_base_url, max_bulk=settings.max_bulk,
                join_path=settings.ui_join_path, access_wait_seconds=settings.access_wait_seconds,
                expiry_interval=settings.expiry_job_interval, pii=PersonIds.from_settings(settings))
    consumers.register(runtime, deps)
    jobs.register(runtime, deps)

    app = create_app(settings, title="spvhub invitations",
                     description="Invitations of client companies by accounting firms (token hashes, status, "
                                 "15-day expiry).", routers=[router, internal], lifespan=runtime.lifespan())
    app.state.deps = deps
    app.state.runtime = runtime
    return app, runtime


def build_app() -> FastAPI:
    return build()[0]
