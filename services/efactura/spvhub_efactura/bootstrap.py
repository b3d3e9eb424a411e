"""Composition root of the efactura service: the only place that builds engines, clients and adapters.

Production defaults; tests override any port (`anaf_client` with an ASGITransport to the in-process emulator,
`tokens`, `blobs`, `clock`, `budget`).
"""
from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import httpx
import urllib3
from fastapi import FastAPI
from minio import Minio
from spvhub_common.access import apply_access_changed
from spvhub_common.anaf.budget import DEFAULT_DAILY, AnafBudget, BudgetKind, BudgetLimits, PostgresBudget, ensure_schema
from spvhub_common.anaf.client import AnafClient
from spvhub_common.anaf.errors import AnafError
from spvhub_common.blobs import BlobNotFound, BlobStore, S3BlobStore
from spvhub_common.clock import make_clock
from spvhub_common.db import create_engine, ensure_database
from spvhub_common.errors import AppError
from spvhub_common.events.portfolio import AccessChanged
from spvhub_common.http import create_app
from spvhub_common.runtime import PeriodicJob, ServiceRuntime
from sqlalchemy import update

from spvhub_efactura import pdfworker
from spvhub_efactura.adapters.anaf import BudgetClock, CommonEfacturaAnaf, EfacturaAnaf
from spvhub_efactura.adapters.auth import AuthTokenClient, TokenProvider
from spvhub_efactura.adapters.orm import access_grants, companies, outbox
from spvhub_efactura.api import router
from spvhub_efactura.archive import parse_xml
from spvhub_efactura.handlers import EVENT_ROUTES, Clock, SyncEngine
from spvhub_efactura.processing import process_zip
from spvhub_efactura.settings import Settings, get_settings
from spvhub_efactura.submissions.anaf import CommonSubmissionAnaf, SubmissionAnaf
from spvhub_efactura.submissions.api import router as submissions_router
from spvhub_efactura.submissions.service import SubmissionService, SubmissionSettings


class Services:
    """What the API and jobs use, built once per process."""

    def __init__(self, settings: Settings, runtime: ServiceRuntime, engine: SyncEngine, blobs: BlobStore,
                 clock: Clock) -> None:
        self.settings = settings
        self.runtime = runtime
        self.sessions = runtime.sessions
        self.engine = engine
        self.blobs = blobs
        self.clock = clock

    async def xml_of(self, row: dict[str, Any]) -> bytes:
        if row.get("xml_key"):
            try:
                return await self.blobs.get(row["xml_key"])
            except BlobNotFound:
                pass
        data = await self.blobs.get(row["zip_key"])
        p = await self.engine.run_cpu(process_zip, data, self.engine.limits, None, False)
        if p.content is None:
            raise AppError("The archived ZIP has no readable XML.", code="unreadable_archive", status=409)
        return p.content

    async def pdf_of(self, row: dict[str, Any]) -> bytes:
        """Rendered locally from the archived XML; cached beside it (re-derivable, so no retention)."""
        # the name carries the layout's version: a PDF cached by an older renderer is not served again
        key = f"efactura/{row['cif']}/{row['message_id']}/rendered-v2.pdf"
        try:
            return await self.blobs.get(key)
        except BlobNotFound:
            pass
        except Exception:  # noqa: BLE001 - the cache is optional
            pass
        xml = await self.xml_of(row)
        try:
            # in a worker process with a deadline: a heavy document holds neither this loop nor its GIL
            data = await pdfworker.render(xml, message_id=row["message_id"], listed_at=row["listed_at"])
        except AppError:
            raise
        except Exception as e:  # noqa: BLE001
            raise AppError(f"The invoice XML cannot be rendered: {str(e)[:200]}", code="unrenderable",
                           status=409) from e
        try:
            await self.blobs.put(key, data, "application/pdf")
        except Exception:  # noqa: BLE001
            pass
        return data

    async def anaf_pdf_of(self, row: dict[str, Any]) -> bytes:
        """ANAF's own PDF (transformare), only when enabled; its WAF sometimes refuses, the local one never."""
        if not self.settings.anaf_transform_pdf or not hasattr(self.engine.anaf, "xml_to_pdf"):
            raise AppError("ANAF's PDF service is disabled here; use the local PDF.", code="anaf_pdf_disabled",
                           status=409)
        xml = await self.xml_of(row)
        try:
            return await self.engine.anaf.xml_to_pdf(xml, row["document_type"] == "credit_note")
        except AnafError as e:
            raise AppError(f"ANAF's PDF service refused: {e.text[:200]}. The local PDF is always available.",
                           code="anaf_pdf_unavailable", status=502) from e

    async def set_interval(self, cif: str, seconds: int | None) -> bool:
        async with self.runtime.uow() as uow:
            res = await uow.session.execute(update(companies).where(companies.c.cif == cif)
                                            .values(interval_seconds=seconds))
            await uow.commit()
        return bool(res.rowcount)


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
    return CommonEfacturaAnaf(AnafClient(config, budget, clock=BudgetClock(clock), transport=transport))


def build(settings: Settings | None = None, *, anaf_transport: httpx.AsyncBaseTransport | None = None,
          anaf: EfacturaAnaf | None = None, tokens: TokenProvider | None = None, blobs: BlobStore | None = None,
          clock: Clock | None = None, budget: AnafBudget | None = None,
          submission_anaf: SubmissionAnaf | None = None, submission_settings: SubmissionSettings | None = None,
          **runtime_kw: bool) -> tuple[FastAPI, ServiceRuntime]:
    settings = settings or get_settings()
    runtime = ServiceRuntime(settings, outbox, **runtime_kw)
    clock = clock or make_clock(settings.clock_url)
    budget_engine = None
    if budget is None:
        budget_engine = create_engine(settings, settings.anaf_budget_database)
        budget = PostgresBudget(budget_engine, budget_limits(settings), BudgetClock(clock))
    if anaf is None:
        anaf = anaf_adapter(settings, budget, clock, anaf_transport)
    tokens = tokens or AuthTokenClient(settings.auth_url, settings.service_token.get_secret_value())
    if blobs is None:
        blobs = S3BlobStore(settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key.get_secret_value(),
                            settings.s3_bucket, secure=settings.s3_secure,
                            default_retention_days=settings.retention_days)
        # The shared store's minio client keeps 10 pooled connections; our I/O threads need more (a wider pool
        # avoids a new TCP connection per request under load).
        blobs.client = Minio(settings.s3_endpoint, access_key=settings.s3_access_key,
                             secret_key=settings.s3_secret_key.get_secret_value(), secure=settings.s3_secure,
                             http_client=urllib3.PoolManager(
                                 maxsize=settings.io_threads, timeout=urllib3.Timeout(connect=10, read=120),
                                 retries=urllib3.Retry(total=5, backoff_factor=0.2,
                                                       status_forcelist=[500, 502, 503, 504])))
    engine = SyncEngine(settings, runtime.uow, anaf, tokens, blobs, clock)
    # issue 10: outgoing submissions share the sync's connections, tokens, ledger and ANAF client
    if submission_anaf is None:
        if not isinstance(anaf, CommonEfacturaAnaf):
            raise ValueError("pass submission_anaf= when anaf= is not the common adapter")
        submission_anaf = CommonSubmissionAnaf(anaf.client)
    submission_settings = submission_settings or SubmissionSettings()
    submissions_svc = SubmissionService(submission_settings, runtime.uow, engine, submission_anaf, blobs, clock,
                                        budget)

    async def on_access_changed(ev, _env, uow) -> None:  # type: ignore[no-untyped-def]
        await apply_access_changed(uow.session, access_grants, ev)
    runtime.consumer("efactura.access-read-model").route(AccessChanged, on_access_changed)
    models = runtime.consumer("efactura.read-models")
    for event_cls, handler in EVENT_ROUTES.items():
        models.route(event_cls, handler)

    runtime.add_job(PeriodicJob("sync-scheduler", settings.scheduler_tick_seconds, engine.tick, singleton=False,
                                initial_delay=0.5))
    runtime.add_job(PeriodicJob("expiry-scan", 3600, engine.expiry_scan, singleton=True, initial_delay=30))
    runtime.add_job(PeriodicJob("submissions", submission_settings.worker_interval_seconds, submissions_svc.tick,
                                singleton=False, initial_delay=0.5))

    async def startup(app: FastAPI) -> None:
        # The blob store client is synchronous (threads): size the default pool for I/O, not for CPUs.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=settings.io_threads,
                                                                           thread_name_prefix="efactura-io"))
        if settings.parse_processes > 0:
            def make_pool() -> ProcessPoolExecutor:
                return ProcessPoolExecutor(max_workers=settings.parse_processes,
                                           mp_context=multiprocessing.get_context("spawn"))
            engine.cpu_pool_factory = make_pool
            engine.cpu_pool = make_pool()
            await engine.start_workers()
        if isinstance(blobs, S3BlobStore):
            await blobs.ensure_bucket(object_lock=True)
        if budget_engine is not None:
            await ensure_database(settings, settings.anaf_budget_database)
            await ensure_schema(budget_engine)

    inner = runtime.lifespan(startup)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with inner(app):
            try:
                yield
            finally:
                await engine.shutdown()
                if engine.cpu_pool is not None:
                    engine.cpu_pool.shutdown(wait=False, cancel_futures=True)
                if budget_engine is not None:
                    await budget_engine.dispose()
                if isinstance(blobs, S3BlobStore):
                    await blobs.aclose()

    app = create_app(settings, title="spvhub efactura",
                     description="e-Factura inbox: per-CIF sync, ANAF message ledger, archived invoices, PDFs, "
                                 "exports and submissions.", routers=[router, submissions_router], lifespan=lifespan)
    app.state.efactura = Services(settings, runtime, engine, blobs, clock)
    app.state.submissions = submissions_svc
    return app, runtime


def build_app() -> FastAPI:
    return build()[0]


_ = parse_xml
