"""The e-Factura inbox sync, along the steps of the service README: scheduling and leases (`scheduling`), one
company's sync - list, record, download (`company`), archiving and the group commit (`archiving`), the CPU pool
(`cpu_pool`), and the connection and token each ANAF call goes through (`connections`). `InboxSync` puts them
together for the jobs, the API and the submissions."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from spvhub_common.blobs import BlobStore
from spvhub_common.clock import Clock
from spvhub_common.tokens import TokenSource

from spvhub_efactura.adapters.anaf import EfacturaAnaf
from spvhub_efactura.adapters.ledger import LedgerMessage
from spvhub_efactura.archive import Limits
from spvhub_efactura.settings import Settings
from spvhub_efactura.sync.archiving import Archiver, blob_prefix, zip_key_of
from spvhub_efactura.sync.company import CompanySync, SyncReport
from spvhub_efactura.sync.connections import Connections, SyncPaused, UowFactory
from spvhub_efactura.sync.cpu_pool import ParsePool
from spvhub_efactura.sync.scheduling import Scheduler

__all__ = ["InboxSync", "SyncPaused", "SyncReport", "UowFactory", "blob_prefix", "zip_key_of"]
T = TypeVar("T")


class InboxSync:
    """The inbox sync of this process. Safe with many replicas: a company is leased (database time) while it
    syncs, and every state change is a conditional update, so a crash at any point is repaired by the next run."""

    def __init__(self, settings: Settings, uow: UowFactory, anaf: EfacturaAnaf, tokens: TokenSource,
                 blobs: BlobStore, clock: Clock, *, instance_id: str | None = None) -> None:
        self.settings = settings
        self.anaf = anaf
        self.clock = clock
        self.pool = ParsePool(settings)
        self.connections = Connections(uow, tokens)
        self.archiver = Archiver(settings, uow, blobs, clock, self.pool)
        self.companies = CompanySync(settings, uow, anaf, self.connections, blobs, clock, self.archiver)
        self.scheduler = Scheduler(settings, uow, clock, self.companies.sync, instance_id=instance_id)

    @property
    def limits(self) -> Limits:
        """The archive's safety limits (ZIP size, members, expansion)."""
        return self.pool.limits

    async def start(self) -> None:
        await self.pool.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        await self.pool.stop()
        await self.archiver.stop()

    # scheduling
    async def tick(self) -> list[str]:
        return await self.scheduler.tick()

    async def wait_idle(self) -> None:
        await self.scheduler.wait_idle()

    async def request_sync(self, cif: str) -> bool:
        return await self.scheduler.request_sync(cif)

    # one company
    async def sync_company(self, cif: str) -> SyncReport:
        return await self.companies.sync(cif)

    async def download_one(self, cif: str, connection_id: str, msg: LedgerMessage | Mapping[str, Any]) -> str:
        return await self.companies.download_one(cif, connection_id, msg)

    async def expiry_scan(self) -> int:
        return await self.companies.expiry_scan()

    async def reprocess(self, cif: str) -> int:
        return await self.archiver.reprocess(cif)

    # connections and tokens (the submissions file and follow through the same ones)
    async def connection_for(self, cif: str, *, filing: bool = False) -> str:
        return await self.connections.connection_for(cif, filing=filing)

    async def anaf_id_of(self, cif: str) -> str:
        """What names the company to ANAF in `cif=` (upload, uploadb2c, the lists): the CIF, or a person key's clear
        CNP, unsealed now; raises `SyncPaused` (code cnp_missing / cnp_invalid) when it cannot be had. For the ANAF
        call only: never log, store or publish it."""
        return await self.companies.anaf_id(cif)

    async def with_token(self, connection_id: str, call: Callable[[str], Awaitable[T]]) -> T:
        return await self.connections.with_token(connection_id, call)

    async def run_cpu(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.pool.run(fn, *args)
