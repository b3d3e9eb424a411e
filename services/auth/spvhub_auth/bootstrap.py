"""Composition root of the auth service: the only place that builds engines, clients and adapters."""
from __future__ import annotations

from fastapi import FastAPI

from spvhub_common.events.portfolio import AccessChanged
from spvhub_common.access import apply_access_changed
from spvhub_common.http import create_app
from spvhub_common.runtime import ServiceRuntime
from spvhub_auth.adapters.orm import access_grants, outbox
from spvhub_auth.api import router
from spvhub_auth.settings import Settings, get_settings


def build(settings: Settings | None = None, **runtime_kw: bool) -> tuple[FastAPI, ServiceRuntime]:
    settings = settings or get_settings()
    runtime = ServiceRuntime(settings, outbox, **runtime_kw)

    async def on_access_changed(ev, _env, uow) -> None:  # type: ignore[no-untyped-def]
        await apply_access_changed(uow.session, access_grants, ev)
    runtime.consumer("auth.access-read-model").route(AccessChanged, on_access_changed)

    app = create_app(settings, title="spvhub auth", description="Platform accounts, API credentials, JWT signing keys and ANAF connections (tokens encrypted at rest).", routers=[router],
                     lifespan=runtime.lifespan())
    return app, runtime


def build_app() -> FastAPI:
    return build()[0]
