"""The ports and settings the portfolio use cases need (built in bootstrap; fakes in unit tests)."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from spvhub_common.clock import Clock
from spvhub_common.pii import DEV_PII_SECRET, PersonIds
from spvhub_common.uow import SqlUnitOfWork

from spvhub_portfolio.adapters.anaf import EfacturaListPort, RegistryPort, TokenPort


@dataclass
class Deps:
    """The ports the use cases need (built in bootstrap; fakes in unit tests)."""

    uow: Callable[[], SqlUnitOfWork]
    registry: RegistryPort
    efactura: EfacturaListPort
    tokens: TokenPort
    clock: Clock
    registry_max_age: timedelta = timedelta(days=1)
    recheck_interval: timedelta = timedelta(days=1)
    retry_incomplete_after: timedelta = timedelta(minutes=30)
    probe_concurrency: int = 8
    discovery_days: int = 60
    jobs_tick_seconds: float = 300
    # person keys and sealed CNPs under the installation's PII secret (bootstrap passes the settings' one)
    pii: PersonIds = field(default_factory=lambda: PersonIds(DEV_PII_SECRET))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlUnitOfWork]:
        """A unit of work committed when the block ends normally (a `return` included), rolled back on an error:
        one HTTP command, one transaction."""
        async with self.uow() as uow:
            yield uow
            await uow.commit()
