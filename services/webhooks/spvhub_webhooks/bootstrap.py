"""Composition root of the webhooks service: the only place that builds engines, clients and adapters."""
from __future__ import annotations

from fastapi import FastAPI
from spvhub_common.crypto import SecretBox
from spvhub_common.http import create_app
from spvhub_common.runtime import ServiceRuntime

from spvhub_webhooks import consumers, jobs
from spvhub_webhooks.adapters.orm import outbox
from spvhub_webhooks.adapters.sender import WebhookSender
from spvhub_webhooks.api import router
from spvhub_webhooks.handlers import Deps
from spvhub_webhooks.settings import Settings, get_settings


def build(settings: Settings | None = None, *, sender: WebhookSender | None = None,
          **runtime_kw: bool) -> tuple[FastAPI, ServiceRuntime]:
    settings = settings or get_settings()
    runtime = ServiceRuntime(settings, outbox, **runtime_kw)
    box = SecretBox.from_config(settings.token_key_spec.get_secret_value(), settings.token_key_active)
    sender = sender or WebhookSender(strict=settings.strict_targets, timeout=settings.request_timeout,
                                     connect_timeout=settings.connect_timeout,
                                     max_response_bytes=settings.max_response_bytes)
    runtime.on_stop(sender.close)
    deps = Deps(uow=runtime.uow, box=box, sender=sender, settings=settings)
    consumers.register(runtime, deps)
    jobs.register(runtime, deps)

    app = create_app(settings, title="spvhub webhooks",
                     description="Integrators' HTTPS endpoints and the signed delivery of catalogue events to them "
                                 "(Standard Webhooks), with retries, a delivery log and replay.",
                     routers=[router], lifespan=runtime.lifespan())
    app.state.deps = deps
    app.state.runtime = runtime
    return app, runtime


def build_app() -> FastAPI:
    return build()[0]
