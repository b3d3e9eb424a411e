"""Kafka consumption through FastStream: explicit manual ack after the inbox-claimed transaction commits,
retry with backoff for failures, and a dead-letter topic (`<topic>.dlt`) for poison messages.

Ack policy: MANUAL. A message is committed only after its effects committed (or it went to the DLT),
so a consumer that dies mid-message leaves it to be redelivered to the group.
"""
from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter, Gauge
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from spvhub_common.events import CloudEvent, Event, decode
from spvhub_common.events.envelope import UnknownEvent
from spvhub_common.inbox import claim
from spvhub_common.logging import get_logger
from spvhub_common.telemetry import continue_trace
from spvhub_common.uow import SqlUnitOfWork

log = get_logger(__name__)
PROCESSED = Counter("consumer_messages_total", "Messages handled by consumers", ["consumer", "topic", "outcome"])
DEAD = Counter("consumer_dead_letters_total", "Messages sent to a dead-letter topic", ["consumer", "topic"])
LAG = Gauge("consumer_lag", "Messages behind the partition's end", ["consumer", "topic", "partition"])

Handler = Callable[[Event, CloudEvent, SqlUnitOfWork], Awaitable[None]]


class PoisonMessage(Exception):
    """Raised by a handler for input that can never be processed; goes straight to the DLT."""


class UowFactory(Protocol):
    def __call__(self) -> SqlUnitOfWork: ...


def create_broker(bootstrap: str, client_id: str, **kw: Any) -> KafkaBroker:
    """One broker per service process: idempotent producer, acks=all; start/stop it in the lifespan."""
    # FastStream's own log lines go through the stdlib root handler (JSON, see spvhub_common.logging);
    # its per-message "Received/Processed" lines are DEBUG: the consumer metrics count those.
    kw.setdefault("logger", logging.getLogger("spvhub.faststream"))
    kw.setdefault("log_level", logging.DEBUG)
    return KafkaBroker(bootstrap, client_id=client_id, enable_idempotence=True, acks="all",
                       graceful_timeout=15.0, **kw)


def is_transient(exc: BaseException) -> bool:
    """Infrastructure faults that resolve by waiting: never a reason to dead-letter."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (ConnectionError, asyncio.TimeoutError, TimeoutError)):
        return True
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNREFUSED, errno.ECONNRESET, errno.EPIPE, None):
        return True
    name = type(exc).__name__
    return name in {"KafkaConnectionError", "KafkaTimeoutError", "AnafUnavailable", "ConnectionDoesNotExistError",
                    "CannotConnectNowError", "TooManyConnectionsError", "S3TransientError", "MaxRetryError"}


class EventConsumer:
    """A named consumer group with a routing table event class -> handler (routing as data)."""

    def __init__(self, broker: KafkaBroker, name: str, uow_factory: UowFactory, *,
                 max_attempts: int = 5, base_backoff: float = 0.2, max_backoff: float = 30.0,
                 topic_prefix: str = "") -> None:
        self.broker = broker
        self.name = name
        self.uow_factory = uow_factory
        self.routes: dict[type[Event], Handler] = {}
        self.max_attempts = max_attempts
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.topic_prefix = topic_prefix

    def route(self, event_cls: type[Event], handler: Handler) -> None:
        self.routes[event_cls] = handler

    def register(self, **subscriber_kw: Any) -> None:
        topics = sorted({self.topic_prefix + c.topic for c in self.routes})
        # the prefix isolates consumer groups too: a test system never joins the dev system's groups
        kw: dict[str, Any] = {"group_id": self.topic_prefix + self.name, "auto_offset_reset": "earliest",
                              "ack_policy": AckPolicy.MANUAL, "max_poll_interval_ms": 600_000}
        kw.update(subscriber_kw)
        sub = self.broker.subscriber(*topics, **kw)
        sub(self._consume)

    async def _consume(self, body: Any, msg: KafkaMessage) -> None:
        raw = msg.raw_message
        topic = getattr(raw, "topic", "?")
        self._record_lag(msg)
        try:
            env, event = decode(msg.body)
        except (ValueError, UnknownEvent) as exc:
            await self._dead_letter(msg, topic, f"undecodable: {exc}")
            return
        handler = self.routes.get(type(event))
        if handler is None:  # an event type this consumer does not handle on a subscribed topic
            PROCESSED.labels(self.name, topic, "ignored").inc()
            await msg.ack()
            return
        attempt = 0
        while True:
            try:
                outcome = await self._apply(handler, event, env, topic)
                PROCESSED.labels(self.name, topic, outcome).inc()
                await msg.ack()
                return
            except PoisonMessage as exc:
                await self._dead_letter(msg, topic, f"poison: {exc}")
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                transient = is_transient(exc)
                log.warning("consumer handler failed", consumer=self.name, topic=topic, event_id=env.id,
                            attempt=attempt, transient=transient, error=f"{type(exc).__name__}: {str(exc)[:300]}")
                if not transient and attempt >= self.max_attempts:
                    await self._dead_letter(msg, topic, f"{type(exc).__name__}: {exc}")
                    return
                await asyncio.sleep(min(self.base_backoff * (2 ** min(attempt - 1, 10)), self.max_backoff))

    async def _apply(self, handler: Handler, event: Event, env: CloudEvent, topic: str) -> str:
        async with self.uow_factory() as uow:
            if not await claim(uow.session, self.name, env.id):
                return "duplicate"
            with continue_trace(env.traceparent, f"consume {topic}", **{
                    "messaging.system": "kafka", "messaging.destination.name": topic,
                    "messaging.consumer.group.name": self.name, "cloudevents.event_id": env.id}):
                await handler(event, env, uow)
                await uow.commit()
        return "processed"

    async def _dead_letter(self, msg: KafkaMessage, topic: str, reason: str) -> None:
        raw = msg.raw_message
        headers = {"dlt-reason": reason[:1000], "dlt-consumer": self.name, "dlt-topic": topic,
                   "dlt-partition": str(getattr(raw, "partition", "")), "dlt-offset": str(getattr(raw, "offset", ""))}
        key = getattr(raw, "key", None)
        await self.broker.publish(msg.body, f"{topic}.dlt", key=key, headers=headers)
        DEAD.labels(self.name, topic).inc()
        PROCESSED.labels(self.name, topic, "dead_lettered").inc()
        log.error("message dead-lettered", consumer=self.name, topic=topic, reason=reason[:300])
        await msg.ack()

    def _record_lag(self, msg: KafkaMessage) -> None:
        raw: Any = msg.raw_message  # one ConsumerRecord here (a batch subscriber would hand a tuple)
        consumer = getattr(msg, "consumer", None)
        try:
            from aiokafka import TopicPartition
            tp = TopicPartition(raw.topic, raw.partition)
            hw = consumer.highwater(tp) if consumer is not None else None
            if hw is not None:
                LAG.labels(self.name, raw.topic, str(raw.partition)).set(max(hw - raw.offset - 1, 0))
        except Exception:  # lag is best-effort observability
            pass
