"""Event consumers of the efactura service: the access read model, and the read models of auth/portfolio events
(`handlers.EVENT_HANDLERS`)."""
from __future__ import annotations

from spvhub_common.runtime import ServiceRuntime

from spvhub_efactura.adapters.orm import access_grants
from spvhub_efactura.handlers import EVENT_HANDLERS, Deps


def register(runtime: ServiceRuntime, deps: Deps) -> None:
    runtime.keep_access_read_model(access_grants)  # group efactura.access-read-model
    runtime.route_handlers("efactura.read-models", EVENT_HANDLERS, deps)
