"""The nginx gateway rendered by spvhub_common.gateway_conf, run for real in front of fake services:
routes, internal endpoints hidden, request ids, rate limits, the health view, OpenAPI and the docs page."""
from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from spvhub_common import contracts, gateway_conf

TEMPLATE = gateway_conf.REPO_ROOT / "infra" / "nginx" / "nginx.conf.tmpl"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeService:
    """Answers every request with its own name, the path and the X-Request-ID it received."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ready = True
        outer = self

        class H(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                if self.path == "/health/ready":
                    code = 200 if outer.ready else 503
                    body = {"status": "ok" if outer.ready else "unavailable", "service": outer.name,
                            "failures": {} if outer.ready else {"db": "OperationalError: down"}}
                else:
                    code, body = 200, {"service": outer.name, "path": self.path,
                                       "request_id": self.headers.get("X-Request-ID")}
                raw = json.dumps(body, separators=(",", ":")).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Request-ID", str(self.headers.get("X-Request-ID")))
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def call(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture(scope="module")
def gateway(nginx_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, FakeService]]]:
    fakes = {s: FakeService(s) for s in gateway_conf.SERVICES}
    prefix: Path = tmp_path_factory.mktemp("gateway")
    port = free_port()
    env = {f"SPVHUB_{s.upper()}_PORT": str(f.port) for s, f in fakes.items()}
    env.update({"SPVHUB_GATEWAY_RATE_LOGIN": "6r/m", "SPVHUB_GATEWAY_BURST_LOGIN": "3"})
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    try:
        assert gateway_conf.main(["--template", str(TEMPLATE), "--out", str(prefix / "nginx.conf"),
                                  "--prefix", str(prefix), "--listen", f"127.0.0.1:{port}",
                                  "--openapi-from", "contracts"]) == 0
    finally:
        mp.undo()
    conf = str(prefix / "nginx.conf")
    check = subprocess.run([nginx_bin, "-t", "-p", str(prefix), "-c", conf], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    log = open(prefix / "nginx.log", "w")
    proc = subprocess.Popen([nginx_bin, "-p", str(prefix), "-c", conf, "-g", "daemon off;"], stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            call(base + "/health/live")
            break
        except OSError:
            time.sleep(0.1)
    try:
        yield base, fakes
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        for f in fakes.values():
            f.server.shutdown()


def test_every_route_reaches_its_service(gateway: tuple[str, dict[str, FakeService]]) -> None:
    base, _ = gateway
    for route in gateway_conf.routes():
        for path in ([route.path] if route.exact else [route.path, route.path + "/companies/RO1?x=1"]):
            status, _, body = call(base + path)
            assert status == 200, path
            got = json.loads(body)
            assert got["service"] == route.service and got["path"] == path
    status, _, body = call(base + "/api/authx/login")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"


def test_internal_endpoints_are_not_exposed(gateway: tuple[str, dict[str, FakeService]]) -> None:
    base, _ = gateway
    for path in ("/internal/connections/1/access-token", "/api/auth/internal/x"):
        status, _, body = call(base + path)
        assert status == 404 and json.loads(body)["error"]["code"] == "not_found"


def test_request_id_is_propagated_or_generated(gateway: tuple[str, dict[str, FakeService]]) -> None:
    base, _ = gateway
    status, headers, body = call(base + "/api/efactura/invoices", headers={"X-Request-ID": "req-42"})
    assert json.loads(body)["request_id"] == "req-42"
    assert headers["X-Request-ID"] == "req-42"
    status, headers, body = call(base + "/api/efactura/invoices", headers={"X-Request-ID": 'bad id"'})
    minted = json.loads(body)["request_id"]
    assert minted != 'bad id"' and len(minted) == 32 and headers["X-Request-ID"] == minted


def test_login_is_rate_limited_with_the_platform_error_body(gateway: tuple[str, dict[str, FakeService]]) -> None:
    base, _ = gateway
    codes = [call(base + "/api/auth/login", "POST")[0] for _ in range(8)]
    assert codes[0] == 200 and codes[-1] == 429, codes
    status, headers, body = call(base + "/api/auth/login", "POST")
    assert status == 429 and json.loads(body)["error"]["code"] == "rate_limited" and "Retry-After" in headers
    # other routes are not limited by the login zone
    assert call(base + "/api/auth/me")[0] == 200


def test_rate_limited_paths_are_configured(gateway: tuple[str, dict[str, FakeService]]) -> None:
    paths = {r.path for r in gateway_conf.RATE_LIMITS}
    assert {"/api/auth/login", "/api/auth/signup", "/api/invitations/preview", "/api/invitations/claim"} <= paths


def test_health_is_one_view_of_all_services(gateway: tuple[str, dict[str, FakeService]]) -> None:
    base, fakes = gateway
    status, headers, body = call(base + "/health", headers={"X-Request-ID": "health-1"})
    view = json.loads(body)
    assert status == 200 and view["status"] == "ok" and headers["X-Request-ID"] == "health-1"
    assert set(view["services"]) == set(gateway_conf.SERVICES)
    fakes["notifier"].ready = False
    fakes["etransport"].server.shutdown()
    fakes["etransport"].server.server_close()
    view = json.loads(call(base + "/health")[2])
    assert view["status"] == "degraded"
    assert view["services"]["notifier"]["failures"] == {"db": "OperationalError: down"}
    assert view["services"]["etransport"]["status"] == "unavailable"
    assert view["services"]["auth"]["status"] == "ok"
    fakes["notifier"].ready = True


def test_openapi_and_docs_are_served(gateway: tuple[str, dict[str, FakeService]]) -> None:
    base, _ = gateway
    status, _, body = call(base + "/openapi.json")
    assert status == 200
    assert json.loads(body) == json.loads((contracts.CONTRACTS / contracts.OPENAPI_FILE).read_text())
    status, _, page = call(base + "/docs/")
    assert status == 200 and b"swagger-ui-bundle.js" in page and b"/openapi.json" in page
    assert b"http" not in page.replace(b"http-equiv", b"")  # no CDN: everything is served locally
    status, _, js = call(base + "/docs/swagger-ui-bundle.js")
    assert status == 200 and len(js) > 100_000


def test_merged_openapi_from_code_is_what_the_gateway_would_serve(tmp_path: Path) -> None:
    html = tmp_path / "html"
    html.mkdir()
    assert gateway_conf.write_openapi(html) == "built from the service apps"
    assert json.loads((html / "openapi.json").read_text()) == contracts.build_openapi()


def test_the_dev_script_invocation_renders_a_valid_config(nginx_bin: str, tmp_path: Path) -> None:
    """Exactly what ./dev's start_gateway runs (default listen from infra/stack.env)."""
    import os
    import sys

    prefix = tmp_path / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    env = {**os.environ, **gateway_conf.read_env_file()}
    out = subprocess.run([sys.executable, "-m", "spvhub_common.gateway_conf", "--template", str(TEMPLATE),
                          "--out", str(prefix / "nginx.conf"), "--prefix", str(prefix)],
                         env=env, capture_output=True, text=True, cwd=gateway_conf.REPO_ROOT)
    assert out.returncode == 0, out.stderr
    conf = (prefix / "nginx.conf").read_text()
    assert f"listen 127.0.0.1:{env['SPVHUB_GATEWAY_PORT']};" in conf
    for s in gateway_conf.SERVICES:
        assert f"server 127.0.0.1:{env[f'SPVHUB_{s.upper()}_PORT']}" in conf
    assert "pid tmp/nginx.pid;" in conf and "access_log /dev/stdout spvhub_json;" in conf
    check = subprocess.run([nginx_bin, "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    for f in ("openapi.json", "health.json", "docs/index.html", "docs/swagger-ui-bundle.js"):
        assert (prefix / "html" / f).exists(), f
