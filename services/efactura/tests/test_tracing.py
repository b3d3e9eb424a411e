"""One invoice's trace: the ANAF download, the archiving, the outbox row, the Kafka publish and a consumer of
`efactura.invoice-downloaded` all carry the same trace id (in-memory span exporter, real stack)."""
from __future__ import annotations

import asyncio

from efactura_kit import Harness, company_cifs, efactura_settings, new_emulator
from opentelemetry.trace import SpanKind
from spvhub_common.broker import EventConsumer, create_broker
from spvhub_common.events import decode
from spvhub_common.events.efactura import InvoiceDownloaded
from spvhub_common.telemetry import capture_spans
from spvhub_efactura.adapters.orm import outbox
from sqlalchemy import select


async def test_one_invoice_is_one_trace_from_anaf_to_every_consumer(fresh_database: str, topic_prefix: str,
                                                                   minio_up: None, kafka_up: str) -> None:
    spans = capture_spans()
    emulator = new_emulator(1)
    settings = efactura_settings(fresh_database, topic_prefix)
    [cif] = company_cifs(1)
    async with Harness(settings, emulator, start_relay=True) as h:
        await h.admin("invoices/generate", {"cuis": [cif], "per_company_per_day": 1, "days": 1})
        await h.grant("acc", [cif])
        await h.sync_until_settled()
        async with h.runtime.sessions() as session:
            rows = (await session.execute(select(outbox).where(outbox.c.topic == InvoiceDownloaded.topic))).all()
        assert rows
        envelope, event = decode(rows[0].payload)
        trace_id = int(envelope.traceparent.split("-")[1], 16)

        consumed: list[str] = []
        broker = create_broker(settings.kafka_bootstrap, "trace-probe")
        probe = EventConsumer(broker, "trace-probe", h.runtime.uow, topic_prefix=topic_prefix)

        async def seen(ev, env, uow):  # a downstream consumer (the notifier's position in the chain)
            consumed.append(env.id)
        probe.route(InvoiceDownloaded, seen)
        probe.register()
        await broker.start()
        try:
            for _ in range(150):
                if envelope.id in consumed:
                    break
                await asyncio.sleep(0.2)
        finally:
            await broker.stop()
        assert envelope.id in consumed

    ours = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
    names = {(s.kind, s.name) for s in ours}
    archive = next(s for s in ours if s.name == "efactura archive-message")
    assert archive.attributes["efactura.message_id"] == event.message_id
    assert (SpanKind.CLIENT, "anaf efactura.descarcare") in names          # the ANAF call
    assert (SpanKind.PRODUCER, f"publish {InvoiceDownloaded.topic}") in names  # outbox relay -> Kafka
    assert any(s.kind == SpanKind.CONSUMER and s.name.endswith(InvoiceDownloaded.topic) for s in ours)  # consumer
    download = next(s for s in ours if s.name == "anaf efactura.descarcare")
    assert download.parent.span_id == archive.context.span_id
