"""A miniature service schema (a counter table + outbox + inbox) used by the foundation tests."""
from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer
from spvhub_common.events import Event, register
from spvhub_common.messaging import add_messaging_tables
from sqlalchemy import Column, Integer, MetaData, String, Table, text
from sqlalchemy.ext.asyncio import AsyncEngine

metadata = MetaData()
outbox, inbox = add_messaging_tables(metadata)
widgets = Table("widgets", metadata, Column("id", String(40), primary_key=True), Column("n", Integer))
applied = Table("applied", metadata, Column("widget_id", String(40), primary_key=True),
                Column("times", Integer, nullable=False))


@register
class WidgetCreated(Event):
    topic = "testkit.widget-created"
    key_field = "widget_id"
    widget_id: str
    n: int = 0


async def create_schema(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


async def count_applied(engine: AsyncEngine, widget_id: str) -> int:
    async with engine.connect() as conn:
        r = (await conn.execute(text("SELECT times FROM applied WHERE widget_id=:w"), {"w": widget_id})).scalar()
    return int(r or 0)


async def read_topic(bootstrap: str, topic: str, expect: int, timeout: float = 20.0) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"reader-{uuid.uuid4().hex[:6]}", enable_auto_commit=False)
    await consumer.start()
    got: list = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(got) < expect and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                got.extend(msgs)
        # linger a moment to catch anything beyond what was expected
        for msgs in (await consumer.getmany(timeout_ms=1000)).values():
            got.extend(msgs)
    finally:
        await consumer.stop()
    return got
