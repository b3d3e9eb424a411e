"""Outbox, relay and inbox guarantees against the real PostgreSQL and Kafka."""
from __future__ import annotations

import asyncio

import pytest
from _kit import WidgetCreated, count_applied, create_schema, outbox, read_topic, widgets
from spvhub_common.broker import EventConsumer, create_broker
from spvhub_common.db import create_engine, session_factory
from spvhub_common.events import decode
from spvhub_common.outbox import KafkaPublisher, OutboxRelay
from spvhub_common.uow import SqlUnitOfWork
from spvhub_devtools.testing import make_settings
from sqlalchemy import func, insert, select, text


class Boom(Exception):
    pass


@pytest.fixture
async def env(fresh_database: str, kafka_up: str, topic_prefix: str):
    s = make_settings(service="testkit", database=fresh_database, kafka_topic_prefix=topic_prefix)
    engine = create_engine(s)
    await create_schema(engine)
    yield s, engine, session_factory(engine)
    await engine.dispose()


async def test_unit_of_work_that_raises_leaves_neither_row_nor_event(env):
    s, engine, sessions = env
    with pytest.raises(Boom):
        async with SqlUnitOfWork(sessions, outbox, "testkit") as uow:
            await uow.session.execute(insert(widgets).values(id="w1", n=1))
            uow.publish(WidgetCreated(widget_id="w1", n=1))
            await uow.flush_events()  # the outbox row is written inside the transaction...
            raise Boom()  # ...and vanishes with it
    async with sessions() as session:
        assert (await session.execute(select(func.count()).select_from(widgets))).scalar() == 0
        assert (await session.execute(select(func.count()).select_from(outbox))).scalar() == 0


async def test_commit_writes_state_and_outbox_row_together(env):
    s, engine, sessions = env
    async with SqlUnitOfWork(sessions, outbox, "testkit") as uow:
        await uow.session.execute(insert(widgets).values(id="w2", n=2))
        uow.publish(WidgetCreated(widget_id="w2", n=2))
        await uow.commit()
    async with sessions() as session:
        row = (await session.execute(select(outbox))).one()
    assert row.topic == "testkit.widget-created" and row.key == "w2" and row.published_at is None
    env_, ev = decode(row.payload)
    assert env_.type == "ro.spvhub.testkit.widget-created.v1" and ev == WidgetCreated(widget_id="w2", n=2)


async def test_relay_crash_between_publish_and_mark_republishes_and_inbox_applies_once(env):
    s, engine, sessions = env
    topic = s.kafka_topic_prefix + WidgetCreated.topic
    async with SqlUnitOfWork(sessions, outbox, "testkit") as uow:
        uow.publish(WidgetCreated(widget_id="w3", n=3))
        await uow.commit()

    publisher = KafkaPublisher(s.kafka_bootstrap, "test-relay")
    await publisher.start()
    try:
        relay = OutboxRelay(engine, publisher, "testkit", topic_prefix=s.kafka_topic_prefix)

        async def crash(_seqs):
            raise Boom("relay died after publishing, before marking")
        relay.after_publish = crash
        async with engine.connect() as conn:
            with pytest.raises(Boom):
                await relay.publish_batch(conn)
        async with sessions() as session:
            assert (await session.execute(select(outbox.c.published_at))).scalar() is None

        relay2 = OutboxRelay(engine, publisher, "testkit", topic_prefix=s.kafka_topic_prefix)  # "after restart"
        async with engine.connect() as conn:
            assert await relay2.publish_batch(conn) == 1
        async with sessions() as session:
            assert (await session.execute(select(outbox.c.published_at))).scalar() is not None
    finally:
        await publisher.stop()

    records = await read_topic(s.kafka_bootstrap, topic, expect=2)
    assert len(records) == 2 and records[0].value == records[1].value and records[0].key == b"w3"

    broker = create_broker(s.kafka_bootstrap, "test-consumer")
    consumer = EventConsumer(broker, f"{s.kafka_topic_prefix}applier",
                             lambda: SqlUnitOfWork(sessions, outbox, "testkit"), topic_prefix=s.kafka_topic_prefix)

    async def apply(ev, envelope, uow):
        await uow.session.execute(text(
            "INSERT INTO applied (widget_id, times) VALUES (:w, 1) "
            "ON CONFLICT (widget_id) DO UPDATE SET times = applied.times + 1"), {"w": ev.widget_id})
    consumer.route(WidgetCreated, apply)
    consumer.register()
    await broker.start()
    try:
        for _ in range(100):
            async with sessions() as session:
                n_inbox = (await session.execute(text("SELECT count(*) FROM inbox"))).scalar()
            if await count_applied(engine, "w3") >= 1 and n_inbox >= 1:
                await asyncio.sleep(2)  # give the duplicate time to arrive and be skipped
                break
            await asyncio.sleep(0.2)
    finally:
        await broker.stop()
    assert await count_applied(engine, "w3") == 1
    async with sessions() as session:
        assert (await session.execute(text("SELECT count(*) FROM inbox"))).scalar() == 1


async def test_only_one_relay_leads_at_a_time(env):
    s, engine, sessions = env

    class NullPublisher:
        async def send(self, *a):
            return None
    stop = asyncio.Event()
    r1 = OutboxRelay(engine, NullPublisher(), "testkit-leader", poll_interval=0.05)
    r2 = OutboxRelay(engine, NullPublisher(), "testkit-leader", poll_interval=0.05)
    tasks = [asyncio.create_task(r1.run(stop)), asyncio.create_task(r2.run(stop))]
    try:
        for _ in range(50):
            if r1.is_leader or r2.is_leader:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        assert [r1.is_leader, r2.is_leader].count(True) == 1
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def test_caller_chosen_event_id_is_the_cloudevent_id(env):
    s, engine, sessions = env
    async with SqlUnitOfWork(sessions, outbox, "testkit") as uow:
        uow.publish(WidgetCreated(widget_id="w9"), event_id="ledger-123")
        await uow.commit()
    async with sessions() as session:
        row = (await session.execute(select(outbox))).one()
    assert row.event_id == "ledger-123" and decode(row.payload)[0].id == "ledger-123"


async def test_relay_recovers_after_a_failed_batch_and_publishes_later(env):
    s, engine, sessions = env
    async with SqlUnitOfWork(sessions, outbox, "testkit") as uow:
        uow.publish(WidgetCreated(widget_id="w10"))
        await uow.commit()
    sent: list[str] = []

    class FlakyPublisher:
        failures = 2

        async def send(self, topic, key, value, headers):
            if self.failures:
                self.failures -= 1
                raise ConnectionError("kafka unreachable")
            sent.append(topic)
    stop = asyncio.Event()
    relay = OutboxRelay(engine, FlakyPublisher(), "testkit-flaky", poll_interval=0.05)
    task = asyncio.create_task(relay.run(stop))
    try:
        for _ in range(100):
            if sent:
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await task
    assert sent == ["testkit.widget-created"]
    async with sessions() as session:
        assert (await session.execute(select(outbox.c.published_at))).scalar() is not None


async def test_the_backlog_gauge_follows_full_and_partial_batches(env):
    from spvhub_common.outbox import BACKLOG
    s, engine, sessions = env
    async with SqlUnitOfWork(sessions, outbox, "testkit") as uow:
        for i in range(5):
            uow.publish(WidgetCreated(widget_id=f"b{i}", n=i))
        await uow.commit()
    publisher = KafkaPublisher(s.kafka_bootstrap, "test-backlog")
    await publisher.start()
    try:
        relay = OutboxRelay(engine, publisher, "testkit", topic_prefix=s.kafka_topic_prefix, batch_size=2)
        gauge = BACKLOG.labels("testkit")
        seen = []
        async with engine.connect() as conn:
            while await relay.publish_batch(conn):
                seen.append(gauge._value.get())  # noqa: SLF001 - the gauge's current value
    finally:
        await publisher.stop()
    assert seen == [3, 1, 0]  # counted after each full batch; a partial batch emptied the outbox
