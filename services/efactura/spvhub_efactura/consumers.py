"""Event consumers of the efactura service: the access read model, and the read models of auth/portfolio events
(`handlers.EVENT_HANDLERS`)."""
from __future__ import annotations

from functools import partial

from spvhub_common.access import apply_access_changed
from spvhub_common.events.portfolio import AccessChanged
from spvhub_common.runtime import ServiceRuntime
from spvhub_common.uow import SqlUnitOfWork

from spvhub_efactura.adapters.orm import access_grants
from spvhub_efactura.handlers import EVENT_HANDLERS, Deps


def register(runtime: ServiceRuntime, deps: Deps) -> None:
    async def on_access_changed(event: AccessChanged, _envelope: object, uow: SqlUnitOfWork) -> None:
        await apply_access_changed(uow.session, access_grants, event)
    runtime.consumer("efactura.access-read-model").route(AccessChanged, on_access_changed)  # type: ignore[arg-type]
    models = runtime.consumer("efactura.read-models")
    for event_cls, handler in EVENT_HANDLERS.items():
        models.route(event_cls, partial(handler, _deps=deps))
