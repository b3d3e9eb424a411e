"""Kafka consumers of the webhooks service: the access read model, and the catalogue events integrators subscribe
to (each becomes one delivery row per matching endpoint, in the inbox-claimed transaction)."""
from __future__ import annotations

from spvhub_common.runtime import ServiceRuntime

from spvhub_webhooks.adapters.orm import access_grants
from spvhub_webhooks.handlers import EVENT_HANDLERS, Deps


def register(runtime: ServiceRuntime, deps: Deps) -> None:
    runtime.keep_access_read_model(access_grants, "webhooks.access-read-model")
    runtime.route_handlers("webhooks.deliveries", EVENT_HANDLERS, deps)
