"""Acceptance: across a whole session of use (sign-up, failed login, authorization, refusals, renewals, the
internal token endpoint, delegation, certificate renewal, revocation) no token, password or link secret
appears in the logs, in any error body, in the outbox or on the Kafka topics the service wrote."""
from __future__ import annotations

import asyncio
import logging
import uuid

import structlog
from aiokafka import AIOKafkaConsumer
from spvhub_auth import handlers
from spvhub_auth.adapters.orm import outbox
from spvhub_common.logging import configure_logging
from sqlalchemy import func, select

SVC = {"X-Service-Token": "dev-service-token", "X-Service-Name": "efactura"}


async def _kafka_values(bootstrap: str, topics: list[str], expected: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, enable_auto_commit=False,
                                group_id=f"leak-scan-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest",
                                metadata_max_age_ms=1000)
    await consumer.start()
    try:
        values: list[bytes] = []
        deadline = asyncio.get_running_loop().time() + 30
        while len(values) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                for m in msgs:
                    values.append((m.key or b"") + b"|" + (m.value or b"") + b"|" +
                                  b"".join(v for _, v in (m.headers or [])))
        return values
    finally:
        await consumer.stop()


async def test_no_token_in_logs_errors_outbox_or_kafka(harness, capsys, caplog, kafka_up) -> None:  # type: ignore[no-untyped-def]
    h = harness
    configure_logging("auth", "DEBUG")
    structlog.configure(cache_logger_on_first_use=False)
    caplog.set_level(logging.DEBUG)

    class DropTestClientLines(logging.Filter):
        """httpx lines about requests the *test* makes to the service (the browser's callback URL carries the
        one-time code); the service's own outbound calls still go through."""

        def filter(self, record: logging.LogRecord) -> bool:
            return "https://spvhub.test/" not in record.getMessage()
    drop = DropTestClientLines()
    logging.getLogger("httpx").addFilter(drop)
    try:
        c, user = await h.authorized("1000017")
        await h.client.post("/api/auth/login", json={"email": user["user"]["email"], "password": "wrong one"})
        bad = await h.authorize(user["headers"], "1000017", certificate="carrier")  # no rights
        assert bad.status_code == 403
        tok = await h.access_token(c["id"])
        assert tok.status_code == 200
        await h.stored_refresh_token(c["id"])
        day0 = h.clock.now()
        h.at_day(70, day0)
        await handlers.run_lifecycle(h.deps)
        await h.access_token(c["id"])
        await h.stored_refresh_token(c["id"])
        r = await h.client.post(f"/internal/connections/{c['id']}/refresh", headers=SVC)
        h.secrets.add(r.json()["access_token"])
        link = (await h.client.post("/api/auth/anaf/delegations", json={"company_cif": "1000017"},
                                    headers=user["headers"])).json()
        h.secrets.add(link["token"])
        await h.client.post("/api/auth/anaf/delegations/open", json={"token": link["token"] + "x"})
        await h.emu.post("/__admin/certificates/acc/renew")
        h.emu_state.clock.advance(120)  # past the single-flight window of the last refresh
        r = await h.client.post(f"/internal/connections/{c['id']}/refresh", headers=SVC)
        assert r.status_code == 409
        c2, _ = await h.authorized("2000023", user=user)  # new certificate, new tokens
        await h.stored_refresh_token(c2["id"])
        await h.access_token(c2["id"])
        await h.client.post(f"/api/auth/anaf/connections/{c2['id']}/revoke", headers=user["headers"])
        await h.client.get(f"/internal/connections/{c2['id']}/access-token", headers=SVC)
        # platform tokens that were used on the way
        h.secrets.update({user["access_token"], user["refresh_token"]})

        async def relayed() -> bool:
            async with h.runtime.uow() as uow:
                left = (await uow.session.execute(select(func.count()).select_from(outbox).where(
                    outbox.c.published_at.is_(None)))).scalar()
            return left == 0
        await h.wait_for(relayed, seconds=20)
        payloads = await h.outbox_payloads()
        topics = sorted({h.settings.kafka_topic_prefix + t for t, _ in await h.events()})
        kafka = await _kafka_values(kafka_up, topics, len(payloads))
    finally:
        structlog.reset_defaults()
        logging.getLogger("httpx").removeFilter(drop)
        logging.getLogger().handlers = []
    out = capsys.readouterr()
    logs = out.out + out.err + caplog.text
    assert len(kafka) >= len(payloads) >= 5
    prefix = h.settings.kafka_topic_prefix
    assert {"auth.user-registered", "auth.connection-authorized", "auth.token-refreshed",
            "auth.reauthorization-required", "auth.connection-revoked"} <= {t[len(prefix):] for t in topics}
    assert "anaf connection authorized" in logs  # the logs were captured
    secrets = {s for s in h.secrets if s and len(s) >= 8}
    assert len(secrets) >= 10
    haystacks = {"logs": logs, "errors": "\n".join(h.error_bodies),
                 "outbox": b"\n".join(payloads).decode("utf-8", "replace"),
                 "kafka": b"\n".join(kafka).decode("utf-8", "replace")}
    for where, text in haystacks.items():
        for s in secrets:
            assert s not in text, f"a secret leaked into {where}"
        assert "eyJ" not in text, f"a JWT-shaped value in {where}"
