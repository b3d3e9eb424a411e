"""Kafka consumers of the portfolio service: each consumed event is routed through the table in handlers."""
from __future__ import annotations

from typing import Any

from spvhub_common.events import Event
from spvhub_common.events.envelope import CloudEvent
from spvhub_common.runtime import ServiceRuntime
from spvhub_common.uow import SqlUnitOfWork

from spvhub_portfolio.handlers import EVENT_HANDLERS, Deps

CONSUMER = "portfolio.main"


def register_consumers(runtime: ServiceRuntime, deps: Deps) -> None:
    consumer = runtime.consumer(CONSUMER)
    for event_cls, handler in EVENT_HANDLERS.items():
        consumer.route(event_cls, _bind(handler, deps))


def _bind(handler: Any, deps: Deps) -> Any:
    async def run(event: Event, envelope: CloudEvent, uow: SqlUnitOfWork) -> None:
        await handler(event, envelope, uow, deps)
    run.__name__ = handler.__name__
    return run
