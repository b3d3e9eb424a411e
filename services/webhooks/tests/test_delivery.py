"""Deliveries end to end with the real Kafka, PostgreSQL and a real receiver on 127.0.0.1: an invoice event on
Kafka reaches the receiver signed (verified with the scheme's reference `Webhook.verify`), a replay outside the
tolerance is refused by it, a receiver that was down gets every event once it is up (deduped on webhook-id), an
endpoint failing for the whole window is disabled and its owners told, and a loopback target is refused at send
time with prod settings."""
from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import standardwebhooks.webhooks as swh
from spvhub_common.events import decode
from spvhub_common.events.portfolio import AccessChanged
from spvhub_devtools.testing import STACK
from spvhub_webhooks import handlers
from spvhub_webhooks.adapters.sender import PublicOnlyResolver, WebhookSender
from spvhub_webhooks.domain import TargetRefused
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from whkit import (
    CLIENT,
    FIRM,
    INVOICE,
    STRONG,
    Env,
    Receiver,
    create_topics,
    eventually,
    invoice,
    local_name,
    make_env,
    publish_all,
    setup_tenants,
)

STACK_KAFKA = f"127.0.0.1:{STACK['SPVHUB_KAFKA_PORT']}"


async def start_kafka_env(database: str, prefix: str, **kw: Any) -> Env:
    await create_topics(STACK_KAFKA, prefix)
    env = await make_env(database, running=True, kafka_topic_prefix=prefix, **kw)
    await setup_tenants(env)
    return env


async def register(env: Env, url: str, cifs: list[str]) -> dict[str, Any]:
    r = await env.client.post("/api/webhooks/endpoints", headers=env.h("firm-owner"), json={
        "tenant_cif": FIRM, "url": url, "event_types": [INVOICE], "cifs": cifs})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_invoice_event_on_kafka_reaches_the_receiver_signed(fresh_database: str, kafka_up: str,
                                                                   topic_prefix: str, monkeypatch: Any) -> None:
    rec = await Receiver().start()
    env = await start_kafka_env(fresh_database, topic_prefix)
    try:
        ep = await register(env, rec.url, [FIRM])
        rec.secret = ep["secret"]
        await env.runtime.start()
        [event_id] = await publish_all(kafka_up, topic_prefix, [invoice(FIRM)])
        await eventually(lambda: asyncio.sleep(0, rec.got))
        got = rec.got[0]
        # the same CloudEvents JSON as on Kafka
        assert got["id"] == event_id and got["type"] == INVOICE and got["data"]["cif"] == FIRM
        decode(json.dumps(got))
        body, headers = rec.raw[0]
        assert headers["Content-Type"].startswith("application/cloudevents+json")
        assert headers["webhook-signature"].startswith("v1,")
        assert Webhook(ep["secret"]).verify(body, headers)["id"] == event_id

        # the captured request replayed later than the tolerance (5 minutes): the reference verification refuses it
        class Later(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
                return datetime.now(tz) + timedelta(minutes=6)
        monkeypatch.setattr(swh, "datetime", Later)
        with pytest.raises(WebhookVerificationError, match="too old"):
            Webhook(ep["secret"]).verify(body, headers)
        monkeypatch.undo()
        # and a body changed in transit does not verify
        with pytest.raises(WebhookVerificationError):
            Webhook(ep["secret"]).verify(body.replace(FIRM.encode(), b"99999999"), headers)

        # the delivery log
        log = (await env.client.get(f"/api/webhooks/endpoints/{ep['id']}/deliveries",
                                    headers=env.h("firm-owner"))).json()
        [d] = log["items"]
        assert d["status"] == "delivered" and d["last_status_code"] == 204 and d["attempts"] == 1
        assert d["webhook_id"] == headers["webhook-id"] and d["last_latency_ms"] is not None
    finally:
        await env.runtime.stop()
        await env.client.aclose()
        await env.deps.sender.close()
        await rec.stop()


async def test_receiver_down_then_up_gets_every_event_once(fresh_database: str, kafka_up: str,
                                                          topic_prefix: str) -> None:
    rec = Receiver()
    await rec.start()
    port = rec.port
    await rec.stop()  # down: connections refused
    env = await start_kafka_env(fresh_database, topic_prefix)
    try:
        ep = await register(env, f"http://127.0.0.1:{port}/hook", [FIRM, CLIENT])
        rec.secret = ep["secret"]
        await env.runtime.start()
        events = [invoice(FIRM if i % 2 else CLIENT, i) for i in range(8)]
        ids = await publish_all(kafka_up, topic_prefix, events)

        async def retried() -> bool:
            rows = await env.fetch("SELECT count(*) FROM deliveries WHERE attempts >= 2 AND status = 'pending'")
            return int(rows[0][0]) == len(ids)
        await eventually(retried)
        await rec.start(port)  # up again; then it answers 503 for a while, then accepts
        rec.status = 503
        await eventually(lambda: asyncio.sleep(0, rec.refused >= len(ids)))
        rec.status = 200
        await eventually(lambda: asyncio.sleep(0, len(rec.got) == len(ids)))
        assert sorted(g["id"] for g in rec.got) == sorted(ids)
        assert all(n == 1 for n in rec.seen_ids.values()) or len(rec.got) == len(ids)
        log = (await env.client.get(f"/api/webhooks/endpoints/{ep['id']}/deliveries?limit=3",
                                    headers=env.h("firm-owner"))).json()
        assert len(log["items"]) == 3 and log["next_cursor"]
        more = (await env.client.get(f"/api/webhooks/endpoints/{ep['id']}/deliveries",
                                     params={"cursor": log["next_cursor"]}, headers=env.h("firm-owner"))).json()
        assert len(more["items"]) == len(ids) - 3
        d = log["items"][0]
        detail = (await env.client.get(f"/api/webhooks/endpoints/{ep['id']}/deliveries/{d['id']}",
                                       headers=env.h("firm-owner"))).json()
        errors = [a["error"] or "" for a in detail["attempt_log"]]
        assert detail["status"] == "delivered" and any("HTTP 503" in e for e in errors)
        assert any("Connect" in e or "refused" in e.lower() for e in errors), errors

        # manual replay of one delivery: sent again with the same webhook-id (the receiver's dedupe holds)
        r = await env.client.post(f"/api/webhooks/endpoints/{ep['id']}/deliveries/{d['id']}/replay",
                                  headers=env.h("firm-owner"))
        assert r.status_code == 202
        await eventually(lambda: asyncio.sleep(0, rec.seen_ids[d["webhook_id"]] == 2))
        # and of a time range
        r = await env.client.post(f"/api/webhooks/endpoints/{ep['id']}/replay", headers=env.h("firm-owner"), json={
            "since": (datetime.now(UTC) - timedelta(hours=1)).isoformat(), "until": datetime.now(UTC).isoformat()})
        assert r.status_code == 202 and r.json()["replayed"] == len(ids)
        await eventually(lambda: asyncio.sleep(0, sum(rec.seen_ids.values()) >= 2 * len(ids) + 1))
        assert len(rec.got) == len(ids)
    finally:
        await env.runtime.stop()
        await env.client.aclose()
        await env.deps.sender.close()
        await rec.stop()


async def test_an_endpoint_failing_for_the_window_is_disabled_and_its_owners_told(env: Env) -> None:
    await setup_tenants(env)
    env.settings.disable_after_seconds = 1.0
    rec = await Receiver(status=500).start()
    try:
        ep = await register(env, rec.url, [FIRM])
        rec.secret = ep["secret"]
        await env.feed(invoice(FIRM))

        async def disabled() -> bool:
            await handlers.send_due(env.deps)
            return not (await env.fetch("SELECT enabled FROM endpoints"))[0][0]
        await eventually(disabled, 30)
        rows = await env.fetch("SELECT payload FROM outbox")
        [(_, ev)] = [decode(bytes(r.payload)) for r in rows]
        assert ev.topic == "webhooks.endpoint-disabled" and ev.notify_user_ids == ["firm-owner"]  # type: ignore
        # while off: nothing is sent, new events are logged as skipped
        await env.feed(invoice(FIRM, 2))
        st = await env.fetch("SELECT status FROM deliveries ORDER BY created_at")
        assert [r[0] for r in st] == ["pending", "skipped"]
        # fixed and enabled again: what was pending goes out; the skipped one by a replay
        rec.status = 200
        r = await env.client.patch(f"/api/webhooks/endpoints/{ep['id']}", headers=env.h("firm-owner"),
                                   json={"enabled": True})
        assert r.json()["enabled"]
        r = await env.client.post(f"/api/webhooks/endpoints/{ep['id']}/replay", headers=env.h("firm-owner"), json={
            "since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z", "only_failed": True})
        assert r.json()["replayed"] == 1

        async def all_sent() -> bool:
            await handlers.send_due(env.deps)
            return len(rec.got) == 2
        await eventually(all_sent, 30)
    finally:
        await rec.stop()


async def test_a_loopback_target_is_refused_at_send_time_with_prod_settings(env: Env) -> None:
    """An endpoint whose name later resolves to a loopback address (DNS rebinding) is never called."""
    await setup_tenants(env)
    rec = await Receiver().start()
    try:
        ep = await register(env, rec.url.replace("127.0.0.1", "localhost"), [FIRM])
        rec.secret = ep["secret"]
        strict = WebhookSender(strict=True, timeout=3, connect_timeout=1, max_response_bytes=1024)
        for url in (rec.url, rec.url.replace("127.0.0.1", "localhost").replace("http:", "https:"),
                    f"https://{local_name()}:{rec.port}/hook"):
            res = await strict.send(url, b"{}", {})
            assert res.status_code is None and (res.error or "").startswith("target_refused"), (url, res)
        env.deps.sender = strict
        await env.feed(invoice(FIRM))
        await handlers.send_due(env.deps)
        [row] = await env.fetch("SELECT status, last_error FROM deliveries")
        assert row.status == "pending" and row.last_error.startswith("target_refused")
        assert rec.raw == []
        await strict.close()
        with pytest.raises(TargetRefused):
            await PublicOnlyResolver().resolve("localhost", 443)
    finally:
        await rec.stop()


async def test_prod_settings_make_a_strict_sender(fresh_database: str) -> None:
    env = await make_env(fresh_database, env="prod", **STRONG)
    try:
        assert env.deps.sender.strict and env.settings.strict_targets
    finally:
        await env.client.aclose()
        await env.runtime.engine.dispose()


async def test_events_about_a_company_the_tenant_no_longer_sees_make_no_delivery(env: Env) -> None:
    await setup_tenants(env)
    await register(env, "http://127.0.0.1:9/hook", [FIRM])
    await env.feed(AccessChanged(cif=FIRM, user_id="firm-owner", role="owner", granted=False))
    await env.feed(invoice(FIRM))
    assert (await env.fetch("SELECT count(*) FROM deliveries"))[0][0] == 0
