"""Kafka consumers of the invitations service: the read models of companies and discovered rights."""
from __future__ import annotations

from spvhub_common.runtime import ServiceRuntime

from spvhub_invitations.handlers import EVENT_HANDLERS


def register(runtime: ServiceRuntime) -> None:
    c = runtime.consumer("invitations.read-models")
    for event_cls, handler in EVENT_HANDLERS.items():
        c.route(event_cls, handler)
