"""Real Kafka round trips through FastStream: commit after processing, redelivery after a consumer dies,
dead-letter topic for poison messages without blocking the partition, retry of transient failures."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _kit import WidgetCreated, count_applied, create_schema, outbox, read_topic
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from spvhub_common.broker import EventConsumer, create_broker
from spvhub_common.db import create_engine, session_factory
from spvhub_common.events import encode, to_envelope
from spvhub_common.uow import SqlUnitOfWork
from spvhub_devtools.testing import make_settings
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

HERE = Path(__file__).parent


@pytest.fixture
async def env(fresh_database: str, kafka_up: str, topic_prefix: str):
    s = make_settings(service="testkit", database=fresh_database, kafka_topic_prefix=topic_prefix)
    engine = create_engine(s)
    await create_schema(engine)
    # one partition, so "does not block the partition" is tested on the very partition the poison sits in
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic_prefix + WidgetCreated.topic, 1, 1)])
    await admin.close()
    yield s, engine, session_factory(engine)
    await engine.dispose()


async def produce(bootstrap: str, topic: str, values: list[bytes], key: bytes = b"k") -> None:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await p.start()
    try:
        for v in values:
            await p.send_and_wait(topic, v, key=key)
    finally:
        await p.stop()


def event_bytes(widget_id: str) -> bytes:
    return encode(to_envelope(WidgetCreated(widget_id=widget_id), "testkit"))


async def apply_once(ev, env, uow):
    await uow.session.execute(text(
        "INSERT INTO applied (widget_id, times) VALUES (:w, 1) "
        "ON CONFLICT (widget_id) DO UPDATE SET times = applied.times + 1"), {"w": ev.widget_id})


async def wait_for(cond, timeout: float = 30.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await cond():
            return True
        await asyncio.sleep(0.2)
    return False


async def test_poison_message_goes_to_dead_letter_topic_and_partition_moves_on(env):
    s, engine, sessions = env
    topic = s.kafka_topic_prefix + WidgetCreated.topic
    await produce(s.kafka_bootstrap, topic, [b"{not json", event_bytes("after-poison")])
    broker = create_broker(s.kafka_bootstrap, "poison-test")
    consumer = EventConsumer(broker, s.kafka_topic_prefix + "poison", lambda: SqlUnitOfWork(sessions, outbox, "t"),
                             topic_prefix=s.kafka_topic_prefix)
    consumer.route(WidgetCreated, apply_once)
    consumer.register()
    await broker.start()
    try:
        assert await wait_for(lambda: _applied(engine, "after-poison"))
    finally:
        await broker.stop()
    dead = await read_topic(s.kafka_bootstrap, topic + ".dlt", expect=1)
    assert [m.value for m in dead] == [b"{not json"]
    headers = dict(dead[0].headers)
    assert headers["dlt-reason"].startswith(b"undecodable") and headers["dlt-topic"] == topic.encode()


async def _applied(engine, widget_id: str) -> bool:
    return await count_applied(engine, widget_id) >= 1


async def test_handler_bug_is_retried_then_dead_lettered_and_transient_faults_are_retried(env):
    s, engine, sessions = env
    topic = s.kafka_topic_prefix + WidgetCreated.topic
    await produce(s.kafka_bootstrap, topic, [event_bytes("buggy"), event_bytes("flaky")])
    calls: dict[str, int] = {"buggy": 0, "flaky": 0}

    async def handler(ev, env_, uow):
        calls[ev.widget_id] += 1
        if ev.widget_id == "buggy":
            raise KeyError("a bug that will never go away")
        if calls["flaky"] < 4:  # the database "drops" three times, then recovers: never dead-lettered
            raise OperationalError("SELECT 1", {}, ConnectionError("connection reset"))
        await apply_once(ev, env_, uow)

    broker = create_broker(s.kafka_bootstrap, "retry-test")
    consumer = EventConsumer(broker, s.kafka_topic_prefix + "retry", lambda: SqlUnitOfWork(sessions, outbox, "t"),
                             topic_prefix=s.kafka_topic_prefix, max_attempts=3, base_backoff=0.05)
    consumer.route(WidgetCreated, handler)
    consumer.register()
    await broker.start()
    try:
        assert await wait_for(lambda: _applied(engine, "flaky"))
    finally:
        await broker.stop()
    assert calls == {"buggy": 3, "flaky": 4}
    assert await count_applied(engine, "buggy") == 0 and await count_applied(engine, "flaky") == 1
    dead = await read_topic(s.kafka_bootstrap, topic + ".dlt", expect=1)
    assert len(dead) == 1 and b"KeyError" in dict(dead[0].headers)["dlt-reason"]


async def test_message_is_redelivered_when_the_consumer_dies_mid_message(env, tmp_path):
    s, engine, sessions = env
    topic = s.kafka_topic_prefix + WidgetCreated.topic
    group = s.kafka_topic_prefix + "dying"
    marker = tmp_path / "received"
    await produce(s.kafka_bootstrap, topic, [event_bytes("survivor")])
    proc = subprocess.Popen([sys.executable, str(HERE / "_consumer_proc.py"), s.pg_database,
                             s.kafka_topic_prefix, group, str(marker)],
                            cwd=HERE, env={**os.environ, "PYTHONPATH": str(HERE)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if marker.exists():
                break
            await asyncio.sleep(0.1)
        assert marker.read_text() == "survivor", "the first consumer never received the message"
        await asyncio.sleep(6)  # longer than an auto-commit interval: proves nothing is committed early
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert await count_applied(engine, "survivor") == 0

    broker = create_broker(s.kafka_bootstrap, "second-consumer")
    consumer = EventConsumer(broker, group, lambda: SqlUnitOfWork(sessions, outbox, "t"),
                             topic_prefix=s.kafka_topic_prefix)
    consumer.route(WidgetCreated, apply_once)
    consumer.register(session_timeout_ms=6000, heartbeat_interval_ms=1000)
    await broker.start()
    try:
        assert await wait_for(lambda: _applied(engine, "survivor"), timeout=60)
        await asyncio.sleep(1)
    finally:
        await broker.stop()
    assert await count_applied(engine, "survivor") == 1
