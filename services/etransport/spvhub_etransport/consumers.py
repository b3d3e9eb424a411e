"""Kafka consumers of the etransport service: the connection/rights read model (which companies to poll) and the
access read model (who may see which carrier)."""
from __future__ import annotations

from spvhub_common.runtime import ServiceRuntime

from spvhub_etransport.adapters.orm import access_grants
from spvhub_etransport.handlers import EVENT_HANDLERS, Deps


def register(runtime: ServiceRuntime, deps: Deps) -> None:
    runtime.route_handlers("etransport.connections", EVENT_HANDLERS, deps)
    runtime.keep_access_read_model(access_grants, "etransport.access-read-model")
