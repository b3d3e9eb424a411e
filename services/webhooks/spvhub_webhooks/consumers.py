"""Kafka consumers of the webhooks service: the access read model, and the catalogue events integrators subscribe
to (each becomes one delivery row per matching endpoint, in the inbox-claimed transaction)."""
from __future__ import annotations

from typing import Any

from spvhub_common.access import apply_access_changed
from spvhub_common.events.portfolio import AccessChanged
from spvhub_common.runtime import ServiceRuntime

from spvhub_webhooks.adapters.orm import access_grants
from spvhub_webhooks.handlers import EVENT_HANDLERS, Deps


def register(runtime: ServiceRuntime, deps: Deps) -> None:
    async def on_access_changed(ev: AccessChanged, _env: Any, uow: Any) -> None:
        await apply_access_changed(uow.session, access_grants, ev)
    runtime.consumer("webhooks.access-read-model").route(AccessChanged, on_access_changed)  # type: ignore[arg-type]

    consumer = runtime.consumer("webhooks.deliveries")
    for event_cls, handler in EVENT_HANDLERS.items():
        consumer.route(event_cls, _bound(handler, deps))


def _bound(handler: Any, deps: Deps) -> Any:
    async def run(ev: Any, env: Any, uow: Any) -> None:
        await handler(ev, env, uow, deps)
    return run
