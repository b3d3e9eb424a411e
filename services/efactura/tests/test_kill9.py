"""`kill -9` of the service in the middle of a sync, then restart: the same final state (processes: the emulator,
a stand-in for auth's token endpoint, and `python -m spvhub_efactura` twice)."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from efactura_kit import MIGRATIONS, apply_entitlements, company_cifs, efactura_settings, scenario
from spvhub_common.db import create_engine, session_factory
from spvhub_common.events import decode
from spvhub_common.migrate import upgrade_async
from spvhub_common.uow import SqlUnitOfWork
from spvhub_efactura.adapters.orm import invoices, messages, outbox
from sqlalchemy import func, select

pytestmark = pytest.mark.e2e
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


async def test_kill_9_mid_sync_then_restart_reaches_the_same_final_state(
        fresh_database: str, topic_prefix: str, minio_up: None, kafka_up: str, tmp_path: Path) -> None:
    n = 6
    cifs = company_cifs(n)
    scen = tmp_path / "scenario.json"
    scen.write_text(json.dumps(scenario(n)))
    emu_port, auth_port, svc_port = free_port(), free_port(), free_port()
    emu_url = f"http://127.0.0.1:{emu_port}"
    procs: list[subprocess.Popen[bytes]] = []
    settings = efactura_settings(fresh_database, topic_prefix)
    env = {**os.environ, "SPVHUB_ENV": "test", "SPVHUB_PG_DATABASE": fresh_database,
           "SPVHUB_ANAF_BUDGET_DATABASE": fresh_database, "SPVHUB_KAFKA_TOPIC_PREFIX": topic_prefix,
           "SPVHUB_S3_BUCKET": settings.s3_bucket, "SPVHUB_ANAF_EMULATOR_URL": emu_url,
           "SPVHUB_CLOCK_URL": f"{emu_url}/__admin/clock", "SPVHUB_AUTH_URL": f"http://127.0.0.1:{auth_port}",
           "SPVHUB_HTTP_PORT": str(svc_port), "SPVHUB_LEASE_SECONDS": "3", "SPVHUB_SCHEDULER_TICK_SECONDS": "0.3",
           "SPVHUB_RETENTION_DAYS": "1", "SPVHUB_ANAF_CALLS_PER_MINUTE": "1000000", "SPVHUB_RETRY_BASE_SECONDS": "1",
           "SPVHUB_ANAF_TIMEOUT": "5", "SPVHUB_LOG_LEVEL": "WARNING", "SPVHUB_DOWNLOADS_PER_COMPANY": "4",
           "SPVHUB_PG_PORT": str(settings.pg_port), "SPVHUB_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "SPVHUB_S3_ENDPOINT": settings.s3_endpoint}

    def start_service() -> subprocess.Popen[bytes]:
        p = subprocess.Popen([sys.executable, "-m", "spvhub_efactura"], env=env, stdout=subprocess.DEVNULL,
                             stderr=open(tmp_path / f"svc{len(procs)}.log", "wb"))
        procs.append(p)
        return p

    engine = create_engine(settings)
    sessions = session_factory(engine)

    async def counts() -> Counter[str]:
        async with sessions() as s:
            return Counter(dict((await s.execute(select(messages.c.state, func.count()).group_by(messages.c.state)))
                                .all()))
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "anaf_emulator", "--scenario", str(scen), "--port",
                                       str(emu_port), "--switch", "rate_limit_per_minute=0"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen([sys.executable, "-m", "uvicorn", "fake_auth:app", "--port", str(auth_port),
                                       "--log-level", "warning"], cwd=HERE, env={**env, "EMULATOR_URL": emu_url},
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_http(f"{emu_url}/__admin/health")
        wait_http(f"http://127.0.0.1:{auth_port}/docs")
        async with httpx.AsyncClient(base_url=emu_url, timeout=60) as emu:
            (await emu.post("/__admin/invoices/generate", json={"cuis": cifs, "per_company_per_day": 2,
                                                                "days": 25})).raise_for_status()
            (await emu.post("/__admin/faults", json={"family": "efactura", "latency_ms": [40, 120]})).raise_for_status()
            expected = {(m["cif"], m["id"]) for c in cifs for m in (await emu.get(
                "/__admin/messages", params={"cif": c})).json()}
            await upgrade_async(settings, MIGRATIONS)
            await apply_entitlements(lambda: SqlUnitOfWork(sessions, outbox, "efactura"),
                                     {c: [("acc", cifs[0], True)] for c in cifs})
            first = start_service()
            deadline = time.time() + 120
            while time.time() < deadline:
                c = await counts()
                if c["archived"] >= len(expected) * 0.3:
                    break
                await asyncio.sleep(0.2)
            c = await counts()
            assert 0 < c["archived"] < len(expected), c
            os.kill(first.pid, signal.SIGKILL)  # mid-sync
            first.wait()
            start_service()
            deadline = time.time() + 180
            while time.time() < deadline:
                c = await counts()
                if c["archived"] == len(expected):
                    break
                await asyncio.sleep(0.5)
            assert c["archived"] == len(expected), c
            async with sessions() as s:
                ledger = {(r.cif, r.message_id) for r in (await s.execute(select(messages.c.cif,
                                                                                 messages.c.message_id))).all()}
                inv = (await s.execute(select(invoices.c.cif, invoices.c.message_id))).all()
                rows = (await s.execute(select(outbox.c.topic, outbox.c.payload))).all()
            assert ledger == expected
            assert len(inv) == len(set(inv))
            downloaded = Counter((e.cif, e.message_id) for t, p in rows if t == "efactura.invoice-downloaded"
                                 for e in [decode(p)[1]])
            assert set(downloaded.values()) == {1} and len(downloaded) == len(
                [1 for _ in inv]) - sum(1 for t, p in rows if t == "efactura.invoice-error-received") - \
                await _buyer_messages(sessions)
            # the blob store holds exactly one signed ZIP per archived message, written once (one version)
            from minio import Minio
            mc = Minio(settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key.get_secret_value(),
                       secure=False)
            versions = [o.object_name for o in mc.list_objects(settings.s3_bucket, prefix="efactura/",
                                                               recursive=True, include_version=True)]
            assert sorted(versions) == sorted(f"efactura/{c}/{m}/{m}.zip" for c, m in expected)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        await engine.dispose()


async def _buyer_messages(sessions) -> int:  # type: ignore[no-untyped-def]
    async with sessions() as s:
        return int((await s.execute(select(func.count()).select_from(invoices).where(
            invoices.c.document_type == "buyer_message"))).scalar() or 0)
