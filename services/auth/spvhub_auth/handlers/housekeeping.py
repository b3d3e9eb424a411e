"""Forgetting what is no longer needed: throttle counters long past their window, API-key uses past their keep
time (the keys themselves, with their counters and last use, stay)."""
from __future__ import annotations

from spvhub_auth.handlers import api_keys, throttle
from spvhub_auth.handlers.deps import Deps

THROTTLE_KEEP_SECONDS = 86400  # far beyond any throttle window


async def purge_old_records(deps: Deps) -> None:
    async with deps.uow() as uow:
        await throttle.purge(uow, deps.wall.now(), THROTTLE_KEEP_SECONDS)
        await api_keys.purge_usage(uow, deps.wall.now(), deps.settings.api_key_usage_keep_days)
        await uow.commit()
