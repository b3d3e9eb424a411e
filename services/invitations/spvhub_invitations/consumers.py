"""Kafka consumers of the invitations service: the access read model, and the read models of companies and
discovered rights."""
from __future__ import annotations

from spvhub_common.runtime import ServiceRuntime

from spvhub_invitations.adapters.orm import access_grants
from spvhub_invitations.handlers import EVENT_HANDLERS, Deps


def register(runtime: ServiceRuntime, deps: Deps) -> None:
    runtime.keep_access_read_model(access_grants)
    runtime.route_handlers("invitations.read-models", EVENT_HANDLERS, deps)
