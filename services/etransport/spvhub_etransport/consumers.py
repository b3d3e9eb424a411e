"""Kafka consumers of the etransport service: the connection/rights read model (which companies to poll) and the
access read model (who may see which carrier)."""
from __future__ import annotations

from typing import Any

from spvhub_common.access import apply_access_changed
from spvhub_common.events.portfolio import AccessChanged
from spvhub_common.runtime import ServiceRuntime

from spvhub_etransport.adapters.orm import access_grants
from spvhub_etransport.handlers import EVENT_HANDLERS, Deps


def register(runtime: ServiceRuntime, deps: Deps) -> None:
    async def on_access_changed(ev: Any, _env: Any, uow: Any) -> None:
        await apply_access_changed(uow.session, access_grants, ev)
    runtime.consumer("etransport.access-read-model").route(AccessChanged, on_access_changed)

    consumer = runtime.consumer("etransport.connections")
    for event_cls, handler in EVENT_HANDLERS.items():
        consumer.route(event_cls, _bound(handler, deps))


def _bound(handler: Any, deps: Deps) -> Any:
    async def run(ev: Any, env: Any, uow: Any) -> None:
        await handler(ev, env, uow, deps)
    return run
