"""Composition root of the efactura service: the only place that builds engines, clients and adapters.

Production defaults; tests override any port (`anaf_client` with an ASGITransport to the in-process emulator,
`tokens`, `blobs`, `clock`, `budget`).
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import httpx
import urllib3
from fastapi import FastAPI
from minio import Minio
from spvhub_common.anaf.budget import DEFAULT_DAILY, AnafBudget, BudgetKind, BudgetLimits
from spvhub_common.anaf.client import AnafClient
from spvhub_common.blobs import BlobStore, S3BlobStore
from spvhub_common.clock import Clock, make_clock
from spvhub_common.http import create_app
from spvhub_common.runtime import ServiceRuntime
from spvhub_common.tokens import InternalTokenClient, TokenSource

from spvhub_efactura import consumers, jobs
from spvhub_efactura.adapters.anaf import CommonEfacturaAnaf, EfacturaAnaf
from spvhub_efactura.adapters.orm import outbox
from spvhub_efactura.api import router
from spvhub_efactura.handlers import Deps
from spvhub_efactura.settings import Settings, get_settings
from spvhub_efactura.submissions.anaf import CommonSubmissionAnaf, SubmissionAnaf
from spvhub_efactura.submissions.api import router as submissions_router
from spvhub_efactura.submissions.service import SubmissionService
from spvhub_efactura.sync import InboxSync


def budget_limits(settings: Settings) -> BudgetLimits:
    daily = dict(DEFAULT_DAILY)
    daily[BudgetKind.EF_DOWNLOAD] = settings.anaf_download_cap
    return BudgetLimits(per_minute=settings.anaf_calls_per_minute, daily=daily)


def anaf_adapter(settings: Settings, budget: AnafBudget, clock: Clock,
                 transport: httpx.AsyncBaseTransport | None = None) -> CommonEfacturaAnaf:
    """The inbox's port over the shared ANAF client (its `.client` also serves the submissions' port), on the four
    host bases of `settings`, with the service's timeouts and transient-retry settings."""
    config = settings.anaf_config(
        read_timeout=settings.anaf_timeout, connect_timeout=min(10.0, settings.anaf_timeout),
        retries=settings.anaf_retries, backoff=settings.anaf_backoff,
        # a safety net only (httpx enforces anaf_timeout on real connections); it also covers the budget wait, so
        # it must be generous
        attempt_deadline=settings.anaf_timeout * 2 + 30)
    return CommonEfacturaAnaf(AnafClient(config, budget, clock=clock, transport=transport))


def blob_store(settings: Settings) -> S3BlobStore:
    blobs = S3BlobStore(settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key.get_secret_value(),
                        settings.s3_bucket, secure=settings.s3_secure, default_retention_days=settings.retention_days)
    # The shared store's minio client keeps 10 pooled connections; our I/O threads need more (a wider pool avoids
    # a new TCP connection per request under load).
    blobs.client = Minio(settings.s3_endpoint, access_key=settings.s3_access_key,
                         secret_key=settings.s3_secret_key.get_secret_value(), secure=settings.s3_secure,
                         http_client=urllib3.PoolManager(
                             maxsize=settings.io_threads, timeout=urllib3.Timeout(connect=10, read=120),
                             retries=urllib3.Retry(total=5, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504])))
    return blobs


def use_io_threads(settings: Settings) -> Callable[[], Awaitable[None]]:
    async def start() -> None:
        # The blob store client is synchronous (threads): size the default pool for I/O, not for CPUs.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(
            max_workers=settings.io_threads, thread_name_prefix="efactura-io"))
    return start


def auth_tokens(settings: Settings, runtime: ServiceRuntime) -> InternalTokenClient:
    """ANAF tokens from auth through the platform's one client, each reused for a minute (auth stays their owner;
    a refresh drops it)."""
    client = InternalTokenClient(settings.auth_url, settings.service_token.get_secret_value(), "efactura",
                                 max_age=60.0)
    runtime.on_stop(client.aclose)
    return client


def submissions_anaf(anaf: EfacturaAnaf) -> SubmissionAnaf:
    """Outgoing submissions share the sync's ANAF client (and with it its budget and hosts)."""
    if not isinstance(anaf, CommonEfacturaAnaf):
        raise ValueError("pass submission_anaf= when anaf= is not the common adapter")
    return CommonSubmissionAnaf(anaf.client)


def build(settings: Settings | None = None, *, anaf_transport: httpx.AsyncBaseTransport | None = None,
          anaf: EfacturaAnaf | None = None, tokens: TokenSource | None = None, blobs: BlobStore | None = None,
          clock: Clock | None = None, budget: AnafBudget | None = None,
          submission_anaf: SubmissionAnaf | None = None,
          **runtime_kw: bool) -> tuple[FastAPI, ServiceRuntime]:
    settings = settings or get_settings()
    runtime = ServiceRuntime(settings, outbox, **runtime_kw)
    clock = clock or make_clock(settings.clock_url)
    budget = budget or runtime.anaf_budget(budget_limits(settings), clock)
    anaf = anaf or anaf_adapter(settings, budget, clock, anaf_transport)
    tokens = tokens or auth_tokens(settings, runtime)
    if blobs is None:
        blobs = blob_store(settings)
    sync = InboxSync(settings, runtime.uow, anaf, tokens, blobs, clock)
    submissions = SubmissionService(settings, runtime.uow, sync, submission_anaf or submissions_anaf(anaf), blobs,
                                    clock, budget)
    deps = Deps(settings=settings, runtime=runtime, sync=sync, blobs=blobs, clock=clock, submissions=submissions)
    runtime.on_start(use_io_threads(settings))
    runtime.on_start(sync.start)  # the parse workers, warmed up
    runtime.on_stop(sync.stop)
    if isinstance(blobs, S3BlobStore):
        runtime.on_start(partial(blobs.ensure_bucket, object_lock=True))
        runtime.on_stop(blobs.aclose)
    consumers.register(runtime, deps)
    jobs.register(runtime, deps)
    app = create_app(settings, title="spvhub efactura",
                     description="e-Factura inbox: per-CIF sync, ANAF message ledger, archived invoices, PDFs, "
                                 "exports and submissions.", routers=[router, submissions_router],
                     lifespan=runtime.lifespan())
    app.state.deps = deps
    app.state.runtime = runtime
    return app, runtime


def build_app() -> FastAPI:
    return build()[0]
