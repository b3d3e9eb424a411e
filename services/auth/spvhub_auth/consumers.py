"""Kafka consumers of the auth service: the access read model (who may see which CIF), which the shared runtime
keeps from `portfolio.access-changed`, and the events routed through handlers.EVENT_HANDLERS (a natural person's
registration, whose sealed CNP names the person to ANAF)."""
from __future__ import annotations

from spvhub_common.runtime import ServiceRuntime

from spvhub_auth.adapters.orm import access_grants
from spvhub_auth.handlers import EVENT_HANDLERS, Deps


def register(runtime: ServiceRuntime, deps: Deps) -> None:
    runtime.route_handlers("auth.main", EVENT_HANDLERS, deps)
    runtime.keep_access_read_model(access_grants, group="auth.access-read-model")
