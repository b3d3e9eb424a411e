"""Kafka consumers of the auth service: only the access read model (who may see which CIF), which the shared
runtime keeps from `portfolio.access-changed`; auth handles no other event."""
from __future__ import annotations

from spvhub_common.runtime import ServiceRuntime

from spvhub_auth.adapters.orm import access_grants
from spvhub_auth.handlers import Deps


def register(runtime: ServiceRuntime, deps: Deps) -> None:
    # handlers.EVENT_HANDLERS is empty: a consumer group with nothing to route would only hold a Kafka membership
    runtime.keep_access_read_model(access_grants, group="auth.access-read-model")
