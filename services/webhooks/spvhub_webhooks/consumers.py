"""Kafka consumers of the webhooks service: the access read model, and the catalogue events integrators subscribe
to (each becomes one delivery row per matching endpoint, in the inbox-claimed transaction)."""
from __future__ import annotations

from typing import Any

from spvhub_common.access import apply_access_changed
from spvhub_common.events.portfolio import AccessChanged
from spvhub_common.runtime import ServiceRuntime

from spvhub_webhooks import domain, handlers
from spvhub_webhooks.adapters.orm import access_grants
from spvhub_webhooks.settings import Settings


def register(runtime: ServiceRuntime, settings: Settings) -> None:
    async def on_access_changed(ev: AccessChanged, _env: Any, uow: Any) -> None:
        await apply_access_changed(uow.session, access_grants, ev)
    runtime.consumer("webhooks.access-read-model").route(AccessChanged, on_access_changed)  # type: ignore[arg-type]

    async def on_event(ev: Any, env: Any, uow: Any) -> None:
        await handlers.on_event(ev, env, uow, settings=settings)
    c = runtime.consumer("webhooks.deliveries")
    for sub in domain.SUBSCRIBABLE:
        c.route(sub.cls, on_event)
