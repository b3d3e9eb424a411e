"""Submissions acceptance with processes: the efactura service is `kill -9`ed while its upload is on the wire (the
emulator slowed by a latency fault), restarted, and the invoice submitted again five times: exactly one upload is
filed by the emulator, every caller gets the same submission, and it ends accepted and linked to the sent invoice.

The emulator drops a request whose client went away during the latency, so here the interrupted upload was *not*
filed: the restarted service must not know that, must not upload blindly, and uploads again only once ANAF's lists,
read past the grace period, show no trace of it. (The other case, filed but the answer lost, is in
test_submissions.py: the index is adopted from the inbox and nothing is uploaded again.)"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from efactura_kit import MIGRATIONS, apply_entitlements, company_cifs, efactura_settings, scenario
from spvhub_common.db import create_engine, session_factory
from spvhub_common.migrate import upgrade_async
from spvhub_common.uow import SqlUnitOfWork
from spvhub_efactura.adapters.orm import outbox
from submissions_kit import grant_access, invoice_xml
from test_kill9 import free_port, wait_http

pytestmark = pytest.mark.e2e
HERE = Path(__file__).resolve().parent


class _Runtime:
    def __init__(self, sessions) -> None:  # type: ignore[no-untyped-def]
        self.sessions = sessions

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.sessions, outbox, "efactura")


async def test_kill_9_mid_upload_then_resubmit_uploads_exactly_once(
        fresh_database: str, topic_prefix: str, minio_up: None, kafka_up: str, tmp_path: Path) -> None:
    cifs = company_cifs(2)
    seller, buyer = cifs
    scen = tmp_path / "scenario.json"
    scen.write_text(json.dumps(scenario(2)))
    emu_port, auth_port, svc_port = free_port(), free_port(), free_port()
    emu_url, auth_url, svc_url = (f"http://127.0.0.1:{p}" for p in (emu_port, auth_port, svc_port))
    settings = efactura_settings(fresh_database, topic_prefix)
    env = {**os.environ, "SPVHUB_ENV": "test", "SPVHUB_PG_DATABASE": fresh_database,
           "SPVHUB_ANAF_BUDGET_DATABASE": fresh_database, "SPVHUB_KAFKA_TOPIC_PREFIX": topic_prefix,
           "SPVHUB_S3_BUCKET": settings.s3_bucket, "SPVHUB_ANAF_EMULATOR_URL": emu_url,
           "SPVHUB_CLOCK_URL": f"{emu_url}/__admin/clock", "SPVHUB_AUTH_URL": auth_url,
           "SPVHUB_JWKS_URL": f"{auth_url}/.well-known/jwks.json", "SPVHUB_HTTP_PORT": str(svc_port),
           "SPVHUB_SCHEDULER_TICK_SECONDS": "0.3", "SPVHUB_LEASE_SECONDS": "3", "SPVHUB_RETENTION_DAYS": "1",
           "SPVHUB_ANAF_CALLS_PER_MINUTE": "1000000", "SPVHUB_RETRY_BASE_SECONDS": "1", "SPVHUB_ANAF_TIMEOUT": "20",
           "SPVHUB_LOG_LEVEL": "WARNING", "SPVHUB_PG_PORT": str(settings.pg_port),
           "SPVHUB_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "SPVHUB_S3_ENDPOINT": settings.s3_endpoint,
           "SPVHUB_SUBMISSION_LEASE_SECONDS": "3", "SPVHUB_SUBMISSION_WORKER_INTERVAL_SECONDS": "0.5",
           "SPVHUB_SUBMISSION_UNKNOWN_CHECK_SECONDS": "1", "SPVHUB_SUBMISSION_FIRST_CHECK_SECONDS": "1",
           "SPVHUB_SUBMISSION_RETRY_SECONDS": "2", "SPVHUB_SUBMISSION_UNKNOWN_GRACE_SECONDS": "120"}
    procs: list[subprocess.Popen[bytes]] = []

    def start_service() -> subprocess.Popen[bytes]:
        p = subprocess.Popen([sys.executable, "-m", "spvhub_efactura"], env=env, stdout=subprocess.DEVNULL,
                             stderr=open(tmp_path / f"svc{len(procs)}.log", "wb"))
        procs.append(p)
        wait_http(f"{svc_url}/docs")
        return p

    engine = create_engine(settings)
    runtime = _Runtime(session_factory(engine))
    xml = invoice_xml(seller, buyer, "KILL-0001")
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "anaf_emulator", "--scenario", str(scen), "--port",
                                       str(emu_port), "--switch", "rate_limit_per_minute=0"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen([sys.executable, "-m", "uvicorn", "submissions_fake_auth:app", "--port",
                                       str(auth_port), "--log-level", "warning"], cwd=HERE,
                                      env={**env, "EMULATOR_URL": emu_url},
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_http(f"{emu_url}/__admin/health")
        wait_http(f"{auth_url}/docs")
        await upgrade_async(settings, MIGRATIONS)
        await apply_entitlements(runtime, {c: [("acc", seller, True)] for c in cifs})
        await grant_access(runtime, "alice", [seller])
        async with httpx.AsyncClient(base_url=emu_url, timeout=60) as emu, \
                httpx.AsyncClient(base_url=svc_url, timeout=60) as api:
            alice = {**(await api.post(f"{auth_url}/__test/mint/alice")).json(), "Content-Type": "application/xml"}
            url = f"/api/efactura/companies/{seller}/submissions"

            async def uploads() -> tuple[int, int]:
                c = (await emu.get("/__admin/counters")).json()
                sent = sum(v for k, v in c["endpoints"].items() if k.startswith("POST") and "upload" in k)
                return sent, int(c["cui"].get(seller, {}).get("upload", 0))

            first = start_service()
            (await emu.post("/__admin/faults", json={"family": "efactura", "latency_ms": [6000, 6000]})
             ).raise_for_status()
            calls = [asyncio.create_task(api.post(url, content=xml, headers=alice)) for _ in range(5)]
            deadline = time.time() + 30
            while (await uploads())[0] == 0:  # the upload is on the wire, held by the emulator's latency
                assert time.time() < deadline, "the upload never reached the emulator"
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            os.kill(first.pid, signal.SIGKILL)  # mid-upload
            first.wait()
            early = await asyncio.gather(*calls, return_exceptions=True)
            early_ids = {r.json()["id"] for r in early if isinstance(r, httpx.Response) and r.status_code == 200}
            (await emu.delete("/__admin/faults")).raise_for_status()
            await asyncio.sleep(7)  # past the latency: whatever the emulator does with the orphaned request is done
            filed_before_restart = (await uploads())[1]

            start_service()
            again = await asyncio.gather(*(api.post(url, content=xml, headers=alice) for _ in range(5)))
            assert [r.status_code for r in again] == [200] * 5, [r.text for r in again]
            ids = {r.json()["id"] for r in again} | early_ids
            assert len(ids) == 1, ids
            sid = ids.pop()
            await asyncio.sleep(5)  # the dead claim's lease expires: `unknown`, nothing uploaded meanwhile
            assert (await uploads())[1] == filed_before_restart
            state = (await api.get(f"/api/efactura/submissions/{sid}", headers=alice)).json()["state"]
            assert state == "unknown" if not filed_before_restart else state in ("unknown", "processing", "accepted")
            # move past the grace period; the sync lists up to now - 60 s
            (await emu.post("/__admin/clock", json={"advance_seconds": 300})).raise_for_status()
            deadline = time.time() + 120
            detail: dict = {}
            while time.time() < deadline:
                detail = (await api.get(f"/api/efactura/submissions/{sid}", headers=alice)).json()
                if detail["state"] == "accepted" and detail["links"].get("sent_invoice"):
                    break
                await asyncio.sleep(0.5)
            assert detail["state"] == "accepted" and detail["links"].get("sent_invoice"), detail
            note = detail["reconcile_note"] or ""
            assert ("found at ANAF" in note) if filed_before_restart else ("uploading again" in note), detail
            assert (await uploads())[1] == 1
            sent = (await api.get("/api/efactura/invoices", headers=alice,
                                  params={"direction": "sent", "number": "KILL-0001"})).json()["items"]
            assert len(sent) == 1 and sent[0]["upload_index"] == detail["anaf_index"]
            assert detail["links"]["sent_invoice"] == f"/api/efactura/invoices/{sent[0]['id']}"
            # and a later resubmission still does not upload
            r = await api.post(url, content=xml, headers=alice)
            assert r.status_code == 200 and r.json()["id"] == sid
            await asyncio.sleep(1.5)
            assert (await uploads())[1] == 1
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
