"""Kafka consumers of the portfolio service: the events of auth and invitations routed through the one table in
handlers, and the access read model."""
from __future__ import annotations

from spvhub_common.runtime import ServiceRuntime

from spvhub_portfolio.adapters.orm import access_grants
from spvhub_portfolio.handlers import EVENT_HANDLERS, Deps

CONSUMER = "portfolio.main"
ACCESS_READ_MODEL = "portfolio.access-read-model"


def register(runtime: ServiceRuntime, deps: Deps) -> None:
    runtime.route_handlers(CONSUMER, EVENT_HANDLERS, deps)
    runtime.keep_access_read_model(access_grants, ACCESS_READ_MODEL)
