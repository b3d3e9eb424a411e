"""The consumed events reach the handlers through Kafka (inbox-claimed, once): rights discovered for a
connection with e-Transport make its companies tracked; a connection without e-Transport tracks nothing."""
from __future__ import annotations

import asyncio

from spvhub_common.events import encode, to_envelope
from spvhub_common.events.portfolio import RightsDiscovered
from spvhub_common.outbox import KafkaPublisher
from sqlalchemy import text


async def test_rights_discovered_over_kafka_tracks_companies(harness, kafka_up, topic_prefix):
    h = await harness(start_relay=False, start_consumers=True)
    CARRIERS, DECLARANTS = h.carriers, h.declarants
    pub = KafkaPublisher(kafka_up, "test-portfolio")
    await pub.start()
    try:
        events = [
            RightsDiscovered(connection_id="c-firm", holder_cif=DECLARANTS[0], cifs=[CARRIERS[0], f"RO{CARRIERS[1]}"],
                             services=["efactura", "etransport"]),
            RightsDiscovered(connection_id="c-ef", holder_cif=DECLARANTS[1], cifs=[CARRIERS[2]],
                             services=["efactura"]),
        ]
        for ev in events:
            env = to_envelope(ev, "portfolio")
            for _ in range(2):  # at-least-once delivery: the duplicate is skipped by the inbox
                await pub.send(topic_prefix + ev.topic, ev.partition_key().encode(), encode(env), [])
        rows: list = []
        for _ in range(150):
            async with h.runtime.engine.connect() as conn:
                rows = (await conn.execute(text(
                    "SELECT c.cif, c.status, cc.connection_id, cc.status AS cs FROM companies c "
                    "JOIN company_connections cc USING (cif) ORDER BY c.cif"))).all()
                inbox = (await conn.execute(text("SELECT count(*) FROM inbox"))).scalar()
            if len(rows) == 2 and inbox == 2:
                break
            await asyncio.sleep(0.2)
        assert [(r.cif, r.status, r.connection_id, r.cs) for r in rows] == [
            (CARRIERS[0], "active", "c-firm", "active"), (CARRIERS[1], "active", "c-firm", "active")]
        # the connection loses one company
        ev = RightsDiscovered(connection_id="c-firm", holder_cif=DECLARANTS[0], cifs=[CARRIERS[0]],
                              lost=[CARRIERS[1]], services=["efactura", "etransport"])
        await pub.send(topic_prefix + ev.topic, b"k", encode(to_envelope(ev, "portfolio")), [])
        for _ in range(150):
            async with h.runtime.engine.connect() as conn:
                status = (await conn.execute(text("SELECT status FROM companies WHERE cif=:c"),
                                             {"c": CARRIERS[1]})).scalar()
            if status == "lost":
                break
            await asyncio.sleep(0.2)
        assert status == "lost"
    finally:
        await pub.stop()
