"""Process runtime of a service: engine, unit of work, outbox relay, Kafka consumers and periodic jobs,
started and stopped by the FastAPI lifespan; plus the `python -m <pkg> [migrate]` entry point."""
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

from spvhub_common.broker import EventConsumer, create_broker
from spvhub_common.db import create_engine, session_factory
from spvhub_common.logging import configure_logging, get_logger
from spvhub_common.outbox import KafkaPublisher, OutboxRelay
from spvhub_common.security import JwksVerifier
from spvhub_common.settings import ServiceSettings
from spvhub_common.telemetry import setup_tracing
from spvhub_common.uow import SqlUnitOfWork

log = get_logger(__name__)


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

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.sessions, self.outbox, self.settings.service_name, on_commit=self.relay.wake)

    def consumer(self, name: str) -> EventConsumer:
        c = EventConsumer(self.broker, name, self.uow, topic_prefix=self.settings.kafka_topic_prefix)
        self.consumers.append(c)
        return c

    def add_job(self, job: PeriodicJob) -> None:
        self.jobs.append(job)

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
            if extra:
                await extra(app)
            await self.start()
            try:
                yield
            finally:
                try:
                    if on_stop:
                        await on_stop(app)
                finally:
                    await self.stop()
        return _lifespan


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
