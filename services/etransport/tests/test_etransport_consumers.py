"""The consumed events reach the handlers through Kafka (inbox-claimed, once): a CIF whose entitlements name a
connection with e-Transport is tracked through it; a connection entitled without e-Transport tracks nothing; an
emptied snapshot stops the company (status `stopped`, reason `no_entitled_connection`)."""
from __future__ import annotations

import asyncio

from spvhub_common.events import encode, to_envelope
from spvhub_common.events.portfolio import EntitledConnection, EntitlementsChanged
from spvhub_common.outbox import KafkaPublisher
from sqlalchemy import text

BOTH = ["efactura", "etransport"]


async def test_entitlements_over_kafka_track_companies(harness, kafka_up, topic_prefix):
    h = await harness(start_relay=False, start_consumers=True)
    CARRIERS, DECLARANTS = h.carriers, h.declarants
    pub = KafkaPublisher(kafka_up, "test-portfolio")
    await pub.start()
    try:
        events = [
            EntitlementsChanged(cif=CARRIERS[0], connections=[
                EntitledConnection(connection_id="c-firm", holder_cif=DECLARANTS[0], services=BOTH)]),
            EntitlementsChanged(cif=f"RO{CARRIERS[1]}", connections=[
                EntitledConnection(connection_id="c-firm", holder_cif=DECLARANTS[0], services=BOTH)]),
            EntitlementsChanged(cif=CARRIERS[2], connections=[
                EntitledConnection(connection_id="c-ef", holder_cif=DECLARANTS[1], services=["efactura"])]),
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
            if len(rows) == 2 and inbox == 3:
                break
            await asyncio.sleep(0.2)
        assert [(r.cif, r.status, r.connection_id, r.cs) for r in rows] == [
            (CARRIERS[0], "active", "c-firm", "active"), (CARRIERS[1], "active", "c-firm", "active")]
        async with h.runtime.engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM companies WHERE cif = :c"),
                                       {"c": CARRIERS[2]})).scalar() == 0
        # the collaboration with the second carrier ends: nothing may act for it any more
        ev = EntitlementsChanged(cif=CARRIERS[1], connections=[])
        await pub.send(topic_prefix + ev.topic, ev.partition_key().encode(), encode(to_envelope(ev, "portfolio")),
                       [])
        for _ in range(150):
            async with h.runtime.engine.connect() as conn:
                row = (await conn.execute(text("SELECT status, status_reason FROM companies WHERE cif=:c"),
                                          {"c": CARRIERS[1]})).first()
            if row.status == "stopped":
                break
            await asyncio.sleep(0.2)
        assert (row.status, row.status_reason) == ("stopped", "no_entitled_connection")
    finally:
        await pub.stop()
