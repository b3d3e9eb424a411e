"""One trace follows an event from the span that wrote it, through the outbox relay and Kafka, into the
consumer that applied it (real PostgreSQL and Kafka)."""
from __future__ import annotations

import asyncio

import pytest
from _kit import WidgetCreated, count_applied, create_schema, outbox
from opentelemetry.trace import SpanKind
from spvhub_common.broker import EventConsumer, create_broker
from spvhub_common.db import create_engine, session_factory
from spvhub_common.outbox import KafkaPublisher, OutboxRelay
from spvhub_common.telemetry import capture_spans, tracer
from spvhub_common.uow import SqlUnitOfWork
from spvhub_devtools.testing import make_settings


@pytest.fixture
async def env(fresh_database: str, kafka_up: str, topic_prefix: str):
    s = make_settings(service="testkit", database=fresh_database, kafka_topic_prefix=topic_prefix)
    engine = create_engine(s)
    await create_schema(engine)
    yield s, engine, session_factory(engine)
    await engine.dispose()


async def test_one_trace_spans_writer_outbox_kafka_and_consumer(env):
    s, engine, sessions = env
    spans = capture_spans()
    with tracer("test").start_as_current_span("archive message 3001") as root:
        async with SqlUnitOfWork(sessions, outbox, "testkit") as uow:
            uow.publish(WidgetCreated(widget_id="traced"))
            await uow.commit()
    trace_id = root.get_span_context().trace_id

    publisher = KafkaPublisher(s.kafka_bootstrap, "trace-relay")
    await publisher.start()
    try:
        async with engine.connect() as conn:
            assert await OutboxRelay(engine, publisher, "testkit", topic_prefix=s.kafka_topic_prefix
                                     ).publish_batch(conn) == 1
    finally:
        await publisher.stop()

    broker = create_broker(s.kafka_bootstrap, "trace-consumer")
    consumer = EventConsumer(broker, "traced", lambda: SqlUnitOfWork(sessions, outbox, "testkit"),
                             topic_prefix=s.kafka_topic_prefix)

    async def apply(ev, envelope, uow):
        from sqlalchemy import text
        await uow.session.execute(text("INSERT INTO applied (widget_id, times) VALUES (:w, 1)"), {"w": ev.widget_id})
    consumer.route(WidgetCreated, apply)
    consumer.register()
    await broker.start()
    try:
        for _ in range(150):
            if await count_applied(engine, "traced"):
                break
            await asyncio.sleep(0.2)
    finally:
        await broker.stop()
    assert await count_applied(engine, "traced") == 1

    ours = [sp for sp in spans.get_finished_spans() if sp.context.trace_id == trace_id]
    kinds = {(sp.kind, sp.name.split(" ")[0]) for sp in ours}
    topic = s.kafka_topic_prefix + WidgetCreated.topic
    assert (SpanKind.PRODUCER, "publish") in kinds and (SpanKind.CONSUMER, "consume") in kinds
    consume = next(sp for sp in ours if sp.kind == SpanKind.CONSUMER)
    assert consume.parent is not None and consume.parent.span_id == root.get_span_context().span_id
    assert consume.attributes["messaging.destination.name"] == topic
    assert any(sp.name == f"publish {WidgetCreated.topic}" for sp in ours)
