"""`kill -9` of the webhooks service while its deliveries are being retried, then a restart: every event still
reaches the receiver, and a receiver deduping on webhook-id processes each once (the service runs as a process)."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from whkit import (
    CLIENT,
    FIRM,
    INVOICE,
    Receiver,
    create_topics,
    eventually,
    invoice,
    make_env,
    publish_all,
    setup_tenants,
)

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_kill_9_mid_retry_loses_nothing(fresh_database: str, kafka_up: str, topic_prefix: str,
                                              tmp_path: Path) -> None:
    await create_topics(kafka_up, topic_prefix)
    env = await make_env(fresh_database, kafka_topic_prefix=topic_prefix)
    rec = await Receiver(status=503).start()
    procs: list[subprocess.Popen[bytes]] = []
    s = env.settings
    penv = {**os.environ, "SPVHUB_ENV": "test", "SPVHUB_PG_DATABASE": fresh_database, "SPVHUB_PG_PORT": str(s.pg_port),
            "SPVHUB_KAFKA_BOOTSTRAP": s.kafka_bootstrap, "SPVHUB_KAFKA_TOPIC_PREFIX": topic_prefix,
            "SPVHUB_HTTP_PORT": str(free_port()), "SPVHUB_SEND_INTERVAL": "0.2", "SPVHUB_RETRY_BASE_SECONDS": "0.3",
            "SPVHUB_RETRY_MAX_SECONDS": "1", "SPVHUB_LEASE_SECONDS": "3", "SPVHUB_REQUEST_TIMEOUT": "3",
            "SPVHUB_LOG_LEVEL": "WARNING", "SPVHUB_OUTBOX_POLL_INTERVAL": "0.1"}

    def start() -> subprocess.Popen[bytes]:
        p = subprocess.Popen([sys.executable, "-m", "spvhub_webhooks"], env=penv, stdout=subprocess.DEVNULL,
                             stderr=open(tmp_path / f"svc{len(procs)}.log", "wb"), start_new_session=True)
        procs.append(p)
        return p

    try:
        await setup_tenants(env)
        r = await env.client.post("/api/webhooks/endpoints", headers=env.h("firm-owner"), json={
            "tenant_cif": FIRM, "url": rec.url, "event_types": [INVOICE], "cifs": [FIRM, CLIENT]})
        assert r.status_code == 201, r.text
        rec.secret = r.json()["secret"]
        ids = await publish_all(kafka_up, topic_prefix, [invoice(FIRM if i % 2 else CLIENT, i) for i in range(10)])
        first = start()

        async def retrying() -> bool:
            rows = await env.fetch("SELECT count(*) FROM deliveries WHERE status = 'pending' AND attempts >= 2")
            return int(rows[0][0]) == len(ids)
        await eventually(retrying, 90)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        assert rec.got == []
        rec.status = 200
        start()
        await eventually(lambda: asyncio.sleep(0, len(rec.got) == len(ids)), 90)
        assert sorted(g["id"] for g in rec.got) == sorted(ids)
        await eventually(lambda: env.fetch("SELECT 1 WHERE (SELECT count(*) FROM deliveries WHERE status = "
                                           f"'delivered') = {len(ids)}"), 30)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        await rec.stop()
        await env.client.aclose()
        await env.deps.sender.close()
        await env.runtime.engine.dispose()
