"""API keys through the real nginx gateway (rendered by spvhub_devtools.gateway_conf): the auth service and a
tenant-scoped service (keyprobe) served over TCP, the service resolving the key at auth's internal endpoint as
deployed. A key reads its company and gets 403 on another, the gateway's request id reaches the usage log, a
revocation stops the key on the next request, and neither the gateway's log nor an answer carries the key."""
from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from keyprobe import build_probe
from spvhub_devtools import gateway_conf

TEMPLATE = gateway_conf.REPO_ROOT / "infra" / "nginx" / "nginx.conf.tmpl"
A, B = "1000017", "1000025"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _serve(app: Any, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn only exposes a flag
        await asyncio.sleep(0.05)
    return server, task


def _start_nginx(nginx: str, prefix: Path, conf: Path) -> tuple[subprocess.Popen[bytes], Any]:
    log = open(prefix / "nginx.log", "w")  # the access log goes to stdout
    return subprocess.Popen([nginx, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"], stdout=log,
                            stderr=log), log


@pytest.fixture
async def stack(harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("nginx is missing: apt-get install -y nginx-light (./dev up installs it)")
    auth_port, probe_port, gw_port = _free_port(), _free_port(), _free_port()
    auth_http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{auth_port}", timeout=10)
    probe = build_probe(harness.app, harness.runtime.sessions, auth_client=auth_http,
                        introspect_url=f"http://127.0.0.1:{auth_port}/internal/api-keys/introspect")
    servers = [await _serve(harness.app, auth_port), await _serve(probe, probe_port)]
    monkeypatch.setenv("SPVHUB_AUTH_PORT", str(auth_port))
    monkeypatch.setenv("SPVHUB_EFACTURA_PORT", str(probe_port))
    conf = tmp_path / "nginx.conf"
    assert gateway_conf.main(["--template", str(TEMPLATE), "--out", str(conf), "--prefix", str(tmp_path),
                              "--listen", f"127.0.0.1:{gw_port}", "--openapi-from", "contracts"]) == 0
    proc, log = _start_nginx(nginx, tmp_path, conf)
    gw = httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_port}", timeout=10)
    for _ in range(100):
        try:
            await gw.get("/health/live")
            break
        except httpx.HTTPError:
            await asyncio.sleep(0.1)
    try:
        yield {"gw": gw, "tmp": tmp_path}
    finally:
        await gw.aclose()
        proc.terminate()
        proc.wait(10)
        log.close()
        for server, task in servers:
            server.should_exit = True
            await task
        await auth_http.aclose()


async def test_api_key_through_the_gateway(harness, stack) -> None:  # type: ignore[no-untyped-def]
    h, gw = harness, stack["gw"]
    owner = await h.signup()
    for cif in (A, B):
        await h.grant(owner["user"]["id"], cif)
    r = await gw.post("/api/auth/api-keys", headers=owner["headers"],
                      json={"name": "ERP", "companies": [A], "permissions": ["read"]})
    assert r.status_code == 201, r.text
    created = r.json()
    key = created["key"]
    auth = {"Authorization": f"Bearer {key}"}

    ok = await gw.get(f"/api/efactura/companies/{A}/invoices", headers={**auth, "X-Request-ID": "gw-req-1"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["subject"] == f"key:{created['id']}"
    other = await gw.get(f"/api/efactura/companies/{B}/invoices", headers=auth)
    assert other.status_code == 403 and other.json()["error"]["code"] == "no_access_to_company"
    sync = await gw.post(f"/api/efactura/companies/{A}/sync", headers=auth)
    assert sync.status_code == 403 and sync.json()["error"]["code"] == "api_key_permission_missing"
    # the introspection endpoint is not public
    hidden = await gw.post("/internal/api-keys/introspect", json={"key": key})
    assert hidden.status_code == 404

    usage = (await gw.get(f"/api/auth/api-keys/{created['id']}/usage", headers=owner["headers"])).json()["items"]
    assert "gw-req-1" in [u["request_id"] for u in usage]

    rv = await gw.post(f"/api/auth/api-keys/{created['id']}/revoke", headers=owner["headers"])
    assert rv.status_code == 200
    gone = await gw.get(f"/api/efactura/companies/{A}/invoices", headers=auth)
    assert gone.status_code == 401 and gone.json()["error"]["code"] == "api_key_revoked"

    listing = await gw.get("/api/auth/api-keys", headers=owner["headers"])
    assert key[5:] not in listing.text
    await asyncio.sleep(0.2)
    access_log = (stack["tmp"] / "nginx.log").read_text()
    assert f"/api/efactura/companies/{A}/invoices" in access_log  # the log is there, without the key
    assert key[5:] not in access_log
