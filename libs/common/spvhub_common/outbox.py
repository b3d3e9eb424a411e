"""Outbox relay: publishes outbox rows to Kafka with an idempotent producer, then marks them.

One active relay per service (a PostgreSQL advisory lock held on the relay's connection); the others wait
as standbys. Delivery is at-least-once: a crash between publish and mark republishes, and consumers
deduplicate through their inbox.
"""
from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Counter, Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from spvhub_common.logging import get_logger
from spvhub_common.telemetry import children, tracer

log = get_logger(__name__)
PUBLISHED = Counter("outbox_published_total", "Events published from the outbox", ["service", "topic"])
BACKLOG = Gauge("outbox_backlog", "Outbox rows not yet published", ["service"])
_PUBLISHED_OF = children(PUBLISHED)  # (service, topic)


class Publisher(Protocol):
    async def send(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        """Send and wait for the broker's acknowledgement."""


class KafkaPublisher:
    """aiokafka producer with idempotence and acks=all (no duplicates from producer retries)."""

    def __init__(self, bootstrap: str, client_id: str) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # created here: aiokafka binds the producer to the running event loop
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, client_id=self.client_id,
                                    enable_idempotence=True, acks="all", linger_ms=5, request_timeout_ms=15000)
        try:
            await producer.start()
        except Exception:
            await producer.stop()
            raise
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("KafkaPublisher.start() was not awaited")
        return self._producer

    async def send(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        await self.producer.send_and_wait(topic, value=value, key=key, headers=headers)

    async def send_many(self, records: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]]) -> None:
        futs = [await self.producer.send(t, value=v, key=k, headers=h) for t, k, v, h in records]
        await asyncio.gather(*futs)


@contextmanager
def producer_spans(items: list[tuple[str, str | None]]) -> Iterator[None]:
    """A PRODUCER span per published row, child of the trace the row was written in (if any)."""
    spans = [tracer("spvhub.outbox").start_span(
        f"publish {topic}", context=propagate.extract({"traceparent": tp}), kind=SpanKind.PRODUCER,
        attributes={"messaging.system": "kafka", "messaging.destination.name": topic})
        for topic, tp in items if tp]
    try:
        yield
    except BaseException as exc:
        for span in spans:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR))
        raise
    finally:
        for span in spans:
            span.end()


def lock_key(service: str) -> int:
    return int.from_bytes(hashlib.sha256(f"outbox-relay:{service}".encode()).digest()[:8], "big", signed=True)


class OutboxRelay:
    def __init__(self, engine: AsyncEngine, publisher: Publisher, service: str, *, batch_size: int = 500,
                 poll_interval: float = 0.2, retention: timedelta = timedelta(days=7),
                 topic_prefix: str = "") -> None:
        self.engine = engine
        self.publisher = publisher
        self.service = service
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.retention = retention
        self.topic_prefix = topic_prefix
        self._wake = asyncio.Event()
        self.is_leader = False
        self.after_publish: Callable[[list[int]], Awaitable[None]] | None = None  # test seam (crash injection)

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set: acquire leadership, then publish continuously; survive DB/Kafka faults."""
        backoff = 0.5
        while not stop.is_set():
            try:
                async with self.engine.connect() as conn:
                    got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                              {"k": lock_key(self.service)})).scalar()
                    await conn.commit()
                    if not got:
                        self.is_leader = False
                        await self._sleep(stop, 2.0)
                        continue
                    self.is_leader = True
                    log.info("outbox relay is leader", service=self.service)
                    try:
                        await self._lead(conn, stop)
                    finally:
                        self.is_leader = False
                        await self._release(conn)
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # DB or Kafka down: wait and start over; nothing is lost
                log.warning("outbox relay error, retrying", service=self.service, error=str(exc)[:300])
                await self._sleep(stop, backoff)
                backoff = min(backoff * 2, 15.0)

    async def _release(self, conn: AsyncConnection) -> None:
        """Give up leadership; after a failed batch the transaction must be rolled back first. If the
        connection itself is gone, so is the lock (PostgreSQL drops session locks with the session)."""
        try:
            await conn.rollback()
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(self.service)})
            await conn.commit()
        except Exception as exc:
            log.warning("outbox relay could not release its lock cleanly", service=self.service,
                        error=str(exc)[:200])
            await conn.invalidate()

    async def _lead(self, conn: AsyncConnection, stop: asyncio.Event) -> None:
        last_cleanup = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            n = await self.publish_batch(conn)
            if loop.time() - last_cleanup > 300:
                await self.cleanup(conn)
                last_cleanup = loop.time()
            if n < self.batch_size:
                await self._sleep(stop, self.poll_interval)

    async def publish_batch(self, conn: AsyncConnection) -> int:
        rows = (await conn.execute(text(
            "SELECT seq, topic, key, payload, headers FROM outbox WHERE published_at IS NULL "
            "ORDER BY seq LIMIT :n"), {"n": self.batch_size})).all()
        await conn.commit()
        if not rows:
            BACKLOG.labels(self.service).set(0)
            return 0
        records = [(self.topic_prefix + r.topic, r.key.encode() if r.key else None, bytes(r.payload),
                    [(k, str(v).encode()) for k, v in (r.headers or {}).items()] +
                    [("content-type", b"application/cloudevents+json; charset=UTF-8")]) for r in rows]
        sender: Any = getattr(self.publisher, "send_many", None)
        with producer_spans([(r.topic, (r.headers or {}).get("traceparent")) for r in rows]):
            if sender:
                await sender(records)
            else:
                for rec in records:  # keep per-key order: one at a time
                    await self.publisher.send(*rec)
        seqs = [r.seq for r in rows]
        if self.after_publish:
            await self.after_publish(seqs)
        await conn.execute(text("UPDATE outbox SET published_at = now() WHERE seq = ANY(:s)"), {"s": seqs})
        await conn.commit()
        for r in rows:
            _PUBLISHED_OF(self.service, r.topic).inc()
        backlog: int | None
        if len(rows) < self.batch_size:
            backlog = 0  # the SELECT saw every unpublished row, and all of them are out now
        else:
            backlog = (await conn.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))).scalar()
            await conn.commit()
        BACKLOG.labels(self.service).set(backlog or 0)
        return len(rows)

    async def cleanup(self, conn: AsyncConnection) -> int:
        res = await conn.execute(text("DELETE FROM outbox WHERE published_at < now() - make_interval(secs => :s)"),
                                 {"s": self.retention.total_seconds()})
        await conn.commit()
        return res.rowcount or 0

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        self._wake.clear()
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
