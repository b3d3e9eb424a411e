"""Kafka consumers of the etransport service: the connection/rights read model (which companies to poll)."""
from __future__ import annotations

from spvhub_common.runtime import ServiceRuntime

from spvhub_etransport.handlers import EtransportService, routes


def register_consumers(runtime: ServiceRuntime, svc: EtransportService) -> None:
    consumer = runtime.consumer("etransport.connections")
    for event_cls, handler in routes(svc).items():
        consumer.route(event_cls, handler)
