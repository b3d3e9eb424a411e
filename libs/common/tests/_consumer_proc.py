"""A consumer process for the redelivery test: marks that it received the message, then hangs until killed."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from _kit import WidgetCreated, outbox
from spvhub_common.broker import EventConsumer, create_broker
from spvhub_common.db import create_engine, session_factory
from spvhub_common.uow import SqlUnitOfWork
from spvhub_devtools.testing import make_settings


async def main(database: str, prefix: str, group: str, marker: str) -> None:
    s = make_settings(service="testkit", database=database, kafka_topic_prefix=prefix)
    engine = create_engine(s)
    sessions = session_factory(engine)
    broker = create_broker(s.kafka_bootstrap, "dying-consumer")
    consumer = EventConsumer(broker, group, lambda: SqlUnitOfWork(sessions, outbox, "testkit"), topic_prefix=prefix)

    async def hang(ev, env, uow):
        Path(marker).write_text(ev.widget_id)
        await asyncio.sleep(3600)  # killed -9 while "processing": nothing committed, offset not committed
    consumer.route(WidgetCreated, hang)
    consumer.register(session_timeout_ms=6000, heartbeat_interval_ms=1000)
    await broker.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
