"""Process runtime of a service: engine, unit of work, outbox relay, Kafka consumers and periodic jobs,
started and stopped by the FastAPI lifespan; plus the `python -m <pkg> [migrate]` entry point.

What every bootstrap needs beyond that lives here once: `route_handlers` (a consumer group fed from the service's
`EVENT_HANDLERS` table), `keep_access_read_model`, `on_start`/`on_stop` hooks (no hand-written outer lifespans) and
`anaf_budget` (the one PostgreSQL budget shared by every service that calls ANAF)."""
from __future__ import annotations

import asyncio
import hashlib
import random
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Table, text

from spvhub_common.access import apply_access_changed
from spvhub_common.anaf.budget import BudgetLimits, PostgresBudget, ensure_schema
from spvhub_common.broker import EventConsumer, create_broker
from spvhub_common.clock import Clock, make_clock
from spvhub_common.db import create_engine, ensure_database, session_factory
from spvhub_common.events.base import Event
from spvhub_common.events.envelope import CloudEvent
from spvhub_common.events.portfolio import AccessChanged
from spvhub_common.logging import configure_logging, get_logger
from spvhub_common.outbox import KafkaPublisher, OutboxRelay
from spvhub_common.security import JwksVerifier
from spvhub_common.settings import ServiceSettings
from spvhub_common.telemetry import setup_tracing
from spvhub_common.uow import SqlUnitOfWork

log = get_logger(__name__)

EventHandler = Callable[[Any, CloudEvent, SqlUnitOfWork, Any], Awaitable[None]]
"""`async def on_<what>(event, envelope, uow, deps) -> None`: one entry of a service's `EVENT_HANDLERS` table. It runs
inside the consumer's transaction (the inbox row, its writes and its outbox rows commit together) and never commits."""
Hook = Callable[[], Awaitable[Any]]


@dataclass
class PeriodicJob:
    """Work repeated every `interval` seconds; `singleton` runs it on one replica at a time (advisory lock)."""

    name: str
    interval: float
    fn: Callable[[], Awaitable[Any]]
    singleton: bool = True
    initial_delay: float = 1.0


class ServiceRuntime:
    def __init__(self, settings: ServiceSettings, outbox: Table, *, start_consumers: bool = True,
                 start_relay: bool = True, start_jobs: bool = True) -> None:
        self.settings = settings
        self.outbox = outbox
        self.engine = create_engine(settings)
        self.sessions = session_factory(self.engine)
        self.broker = create_broker(settings.kafka_bootstrap, client_id=f"spvhub-{settings.service_name}")
        self.publisher = KafkaPublisher(settings.kafka_bootstrap, client_id=f"spvhub-{settings.service_name}-outbox")
        self.relay = OutboxRelay(self.engine, self.publisher, settings.service_name,
                                 poll_interval=settings.outbox_poll_interval, topic_prefix=settings.kafka_topic_prefix)
        self.consumers: list[EventConsumer] = []
        self.jobs: list[PeriodicJob] = []
        self.start_consumers = start_consumers
        self.start_relay = start_relay
        self.start_jobs = start_jobs
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._start_hooks: list[Hook] = []
        self._stop_hooks: list[Hook] = []

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.sessions, self.outbox, self.settings.service_name, on_commit=self.relay.wake)

    def consumer(self, name: str) -> EventConsumer:
        c = EventConsumer(self.broker, name, self.uow, topic_prefix=self.settings.kafka_topic_prefix)
        self.consumers.append(c)
        return c

    def add_job(self, job: PeriodicJob) -> None:
        self.jobs.append(job)

    def route_handlers(self, group: str, table: dict[type[Event], EventHandler], deps: Any) -> EventConsumer:
        """A consumer group delivering each event type of `table` to its handler, with `deps` as last argument."""
        consumer = self.consumer(group)
        for event_cls, handler in table.items():
            consumer.route(event_cls, _bind(handler, deps))
        return consumer

    def keep_access_read_model(self, access_grants: Table, group: str | None = None) -> EventConsumer:
        """Keep the service's copy of who may see which CIF (`access_grants`) from `portfolio.access-changed`, in
        its own consumer group (`<service>.access-read-model` unless `group` says otherwise)."""
        async def on_access_changed(event: AccessChanged, _envelope: CloudEvent, uow: SqlUnitOfWork) -> None:
            await apply_access_changed(uow.session, access_grants, event)

        consumer = self.consumer(group or f"{self.settings.service_name}.access-read-model")
        consumer.route(AccessChanged, on_access_changed)  # type: ignore[arg-type]
        return consumer

    def on_start(self, fn: Hook) -> Hook:
        """Run `fn()` at start, in registration order, before the consumers, relay and jobs start."""
        self._start_hooks.append(fn)
        return fn

    def on_stop(self, fn: Hook) -> Hook:
        """Run `fn()` at stop, after the consumers, relay and jobs have stopped, in reverse registration order (what
        started last stops first); every hook runs even when an earlier one fails or the start failed."""
        self._stop_hooks.append(fn)
        return fn

    def anaf_budget(self, limits: BudgetLimits | None = None, clock: Clock | None = None) -> PostgresBudget:
        """The one ANAF budget of the platform: counters in `settings.anaf_budget_database`, shared by every service
        and replica (ANAF counts all of the platform's calls), created on start, its engine disposed on stop.

        It counts by the platform clock (`make_clock(settings.clock_url)`: the wall clock in production, the
        emulator's in dev/test; see `spvhub_common.clock`) unless a test passes its own `clock`. Without a budget
        database setting the counters live in the service's own database."""
        database = str(getattr(self.settings, "anaf_budget_database", "") or "")
        engine = create_engine(self.settings, database) if database else self.engine
        budget = PostgresBudget(engine, limits, clock or make_clock(self.settings.clock_url))

        async def prepare() -> None:
            if database:
                await ensure_database(self.settings, database)
            await ensure_schema(engine)
        self.on_start(prepare)
        if engine is not self.engine:
            self.on_stop(engine.dispose)
        return budget

    async def _run_stop_hooks(self) -> None:
        for fn in reversed(self._stop_hooks):
            try:
                await fn()
            except Exception as exc:
                log.exception("stop hook failed", hook=getattr(fn, "__qualname__", repr(fn)), error=str(exc)[:300])

    async def start(self) -> None:
        self._stop.clear()
        if self.start_relay:
            await self._start_with_retry(self.publisher.start, "kafka producer")
            self._tasks.append(asyncio.create_task(self.relay.run(self._stop), name="outbox-relay"))
        if self.start_consumers and self.consumers:
            for c in self.consumers:
                c.register()
            await self._start_with_retry(self.broker.start, "kafka consumers")
        elif self.start_consumers:
            await self._start_with_retry(self.broker.connect, "kafka broker")
        if self.start_jobs:
            for job in self.jobs:
                self._tasks.append(asyncio.create_task(self._run_job(job), name=f"job-{job.name}"))

    async def _start_with_retry(self, fn: Callable[[], Awaitable[Any]], what: str) -> None:
        delay = 0.5
        for attempt in range(30):
            try:
                await fn()
                return
            except Exception as exc:
                log.warning("start failed, retrying", what=what, attempt=attempt, error=str(exc)[:200])
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)
        raise RuntimeError(f"{what} did not start")

    async def stop(self) -> None:
        self._stop.set()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.broker.stop()
        if self.start_relay:
            await self.publisher.stop()
        await self.engine.dispose()

    async def _run_job(self, job: PeriodicJob) -> None:
        await asyncio.sleep(job.initial_delay * random.uniform(0.5, 1.5))
        key = int.from_bytes(hashlib.sha256(f"job:{self.settings.service_name}:{job.name}".encode()).digest()[:8],
                             "big", signed=True)
        while not self._stop.is_set():
            try:
                if job.singleton:
                    async with self.engine.connect() as conn:
                        got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})).scalar()
                        await conn.commit()
                        if got:
                            try:
                                await job.fn()
                            finally:
                                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                                await conn.commit()
                else:
                    await job.fn()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("periodic job failed", job=job.name, error=str(exc)[:300])
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=job.interval)
            except TimeoutError:
                pass

    async def check_database(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    def lifespan(self, extra: Callable[[FastAPI], Awaitable[None]] | None = None,
                 on_stop: Callable[[FastAPI], Awaitable[None]] | None = None) -> Callable[[FastAPI], Any]:
        @asynccontextmanager
        async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
            app.state.runtime = self
            app.state.readiness.append(self.check_database)
            if not hasattr(app.state, "jwks"):
                app.state.jwks = JwksVerifier(self.settings.jwks_url, self.settings.jwt_issuer,
                                              self.settings.jwt_audience)
            started = False
            try:
                for hook in self._start_hooks:
                    await hook()
                if extra:
                    await extra(app)
                await self.start()
                started = True
                yield
            finally:
                try:
                    if on_stop and started:
                        await on_stop(app)
                finally:
                    try:
                        if started:
                            await self.stop()
                    finally:
                        await self._run_stop_hooks()
        return _lifespan


def _bind(handler: EventHandler, deps: Any) -> Callable[[Any, CloudEvent, SqlUnitOfWork], Awaitable[None]]:
    async def bound(event: Any, envelope: CloudEvent, uow: SqlUnitOfWork) -> None:
        await handler(event, envelope, uow, deps)
    bound.__name__ = getattr(handler, "__name__", "handler")
    bound.__qualname__ = getattr(handler, "__qualname__", bound.__name__)
    return bound


def run_main(settings: ServiceSettings, migrations_dir: Path, build_app: Callable[[], FastAPI],
             argv: list[str] | None = None,
             commands: dict[str, Callable[[list[str]], None]] | None = None) -> None:
    """`python -m <pkg>` serves HTTP + consumers + relay + jobs; `python -m <pkg> migrate` migrates;
    `python -m <pkg> <command> [args]` runs one of the service's extra `commands`."""
    argv = sys.argv[1:] if argv is None else argv
    configure_logging(settings.service_name, settings.log_level)
    setup_tracing(settings.service_name, settings.otel_exporter_otlp_endpoint)
    if argv and commands and argv[0] in commands:
        commands[argv[0]](argv[1:])
        return
    if argv and argv[0] != "migrate":
        known = ", ".join(["migrate", *(commands or {})])
        raise SystemExit(f"unknown command {argv[0]!r}; known: {known}")
    if argv[:1] == ["migrate"]:
        from spvhub_common.migrate import upgrade
        upgrade(settings, migrations_dir)
        log.info("migrations applied", database=settings.database_name)
        return
    import uvicorn
    # uvloop: its C transports cut the event loop's own cost per request (a sync's loop is its bottleneck)
    uvicorn.run(build_app(), host=settings.http_host, port=settings.http_port, log_config=None,
                access_log=False, timeout_graceful_shutdown=10, loop="uvloop")
