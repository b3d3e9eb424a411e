"""pytest fixtures for tests against the real stack started by `./dev infra` (PostgreSQL, Kafka, MinIO).

A missing service is a loud failure with the command that fixes it, never a skip.
"""
from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from spvhub_common.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[3]
# The settings' default env is the strict one (prod); tests run as `test`, and so do the services, helper
# processes and scripts they start (they inherit this environment).
os.environ.setdefault("SPVHUB_ENV", "test")


def stack_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in (ROOT / "infra" / "stack.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            env[k] = os.environ.get(k, v)
    return env


STACK = stack_env()


def _require_port(port: int, what: str) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return
    except OSError:
        pytest.fail(f"{what} is not reachable on 127.0.0.1:{port}. Start the stack with `./dev infra` "
                    f"(or run the suite with `./dev test`).", pytrace=False)


def make_settings(service: str = "test", database: str | None = None, **overrides: object) -> ServiceSettings:
    values: dict[str, object] = dict(
        service_name=service, env="test", pg_port=int(STACK["SPVHUB_PG_PORT"]),
        kafka_bootstrap=f"127.0.0.1:{STACK['SPVHUB_KAFKA_PORT']}",
        s3_endpoint=f"127.0.0.1:{STACK['SPVHUB_MINIO_PORT']}", s3_access_key=STACK["SPVHUB_MINIO_USER"],
        s3_secret_key=STACK["SPVHUB_MINIO_PASSWORD"], outbox_poll_interval=0.05)
    if database:
        values["pg_database"] = database
    values.update(overrides)
    return ServiceSettings(**values)  # type: ignore[arg-type]





@pytest.fixture(scope="session")
def postgres_up() -> None:
    _require_port(int(STACK["SPVHUB_PG_PORT"]), "PostgreSQL")


@pytest.fixture(scope="session")
def kafka_up() -> str:
    _require_port(int(STACK["SPVHUB_KAFKA_PORT"]), "Kafka")
    return f"127.0.0.1:{STACK['SPVHUB_KAFKA_PORT']}"


@pytest.fixture(scope="session")
def minio_up() -> None:
    _require_port(int(STACK["SPVHUB_MINIO_PORT"]), "MinIO")


@pytest.fixture
def fresh_database(postgres_up: None) -> Iterator[str]:
    """A new, empty database for one test; dropped afterwards."""
    from spvhub_common.db import drop_database, ensure_database
    name = f"t_{uuid.uuid4().hex[:12]}"
    s = make_settings(database=name)
    asyncio.run(ensure_database(s))
    yield name
    asyncio.run(drop_database(s, name))


@pytest.fixture
def topic_prefix() -> Iterator[str]:
    """Kafka topics of one test are prefixed so runs never see each other's messages; they are deleted after the
    test, because every partition keeps files open in the broker and a full suite's thousands of throwaway topics
    would otherwise exhaust its file descriptors."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    yield prefix
    delete_topics(prefix)


def delete_topics(prefix: str) -> None:
    """Best effort: delete the topics named `prefix*` (a failure only leaves them to the next `./dev reset`).
    Runs its own event loop in a thread, since a test's loop may still be running in this one."""
    from concurrent.futures import ThreadPoolExecutor

    from aiokafka.admin import AIOKafkaAdminClient

    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=make_settings().kafka_bootstrap, request_timeout_ms=10_000)
        await admin.start()
        try:
            names = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if names:
                await admin.delete_topics(names)
        finally:
            await admin.close()

    with ThreadPoolExecutor(1) as pool:
        try:
            pool.submit(asyncio.run, run()).result(timeout=30)
        except Exception:  # noqa: BLE001 - cleanup must never fail a test
            pass


async def topic_records(bootstrap: str, prefix: str) -> list[tuple[str, bytes | None, bytes | None]]:
    """Every record (topic, key, value) on the topics named `prefix*`, from the beginning to the end offsets read
    first: explicit partitions and no consumer group, so nothing rebalances and the wait is bounded."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(prefix)]
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    parts = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest", request_timeout_ms=30000)
    await consumer.start()
    out: list[tuple[str, bytes | None, bytes | None]] = []
    try:
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = {tp: off for tp, off in (await consumer.end_offsets(parts)).items() if off > 0}
        while [tp for tp, off in end.items() if await consumer.position(tp) < off]:
            batch = await consumer.getmany(*end, timeout_ms=2000, max_records=5000)
            for tp, got in batch.items():
                out.extend((tp.topic, r.key, r.value) for r in got)
    finally:
        await consumer.stop()
    return out
