"""Kafka consumers of the notifier: the access read model, the read models (users, companies) and the
notifications themselves, each group fed its part of the one `EVENT_HANDLERS` table."""
from __future__ import annotations

from spvhub_common.runtime import ServiceRuntime

from spvhub_notifier.adapters.orm import access_grants
from spvhub_notifier.handlers import EVENT_HANDLERS, READ_MODEL_EVENTS, Deps


def register(runtime: ServiceRuntime, deps: Deps) -> None:
    runtime.keep_access_read_model(access_grants)
    runtime.route_handlers("notifier.read-models",
                           {e: h for e, h in EVENT_HANDLERS.items() if e in READ_MODEL_EVENTS}, deps)
    runtime.route_handlers("notifier.notifications",
                           {e: h for e, h in EVENT_HANDLERS.items() if e not in READ_MODEL_EVENTS}, deps)
