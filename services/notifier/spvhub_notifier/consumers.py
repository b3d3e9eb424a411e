"""Kafka consumers of the notifier: read models (users, companies) and the notifications themselves."""
from __future__ import annotations

from spvhub_common.runtime import ServiceRuntime

from spvhub_notifier.handlers import EVENT_HANDLERS, READ_MODEL_HANDLERS


def register(runtime: ServiceRuntime) -> None:
    rm = runtime.consumer("notifier.read-models")
    for event_cls, handler in READ_MODEL_HANDLERS.items():
        rm.route(event_cls, handler)
    n = runtime.consumer("notifier.notifications")
    for event_cls, handler in EVENT_HANDLERS.items():
        n.route(event_cls, handler)
