"""The nginx gateway rendered by spvhub_devtools.gateway_conf, run for real in front of fake services:
routes, internal endpoints hidden, request ids, rate limits, the health view, OpenAPI and the docs page, and the
hardening: an access log without secrets, security headers, CORS, no Host reflection, request-body limits."""
from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from spvhub_devtools import contracts, gateway_conf

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
        self.hits = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received = len(self.rfile.read(length)) if length else 0
                if self.path != "/health/ready":
                    outer.hits += 1
                extra: dict[str, str] = {"Access-Control-Allow-Origin": "*"}  # the gateway must not pass it on
                if self.path.startswith("/api/notifier/page"):
                    extra["Content-Security-Policy"] = "default-src 'self'"
                if self.path == "/.well-known/jwks.json":
                    extra["Cache-Control"] = "public, max-age=60"
                content_type = "application/pdf" if self.path.endswith("/pdf") else "application/json"
                if self.path == "/health/ready":
                    code = 200 if outer.ready else 503
                    body = {"status": "ok" if outer.ready else "unavailable", "service": outer.name,
                            "failures": {} if outer.ready else {"db": "OperationalError: down"}}
                else:
                    code, body = 200, {"service": outer.name, "path": self.path,
                                       "request_id": self.headers.get("X-Request-ID"),
                                       "host": self.headers.get("Host"), "received": received}
                raw = json.dumps(body, separators=(",", ":")).encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("X-Request-ID", str(self.headers.get("X-Request-ID")))
                self.send_header("Content-Length", str(len(raw)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = do_OPTIONS = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def call(url: str, method: str = "GET", headers: dict[str, str] | None = None,
         data: bytes | None = None) -> tuple[int, dict, bytes]:
    if data is None and method == "POST":
        data = b""
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with _OPENER.open(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def headers_of(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """Every response header line, repeated ones included (a dict would hide a duplicate)."""
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=b"" if method == "POST" else None)
    try:
        with _OPENER.open(req, timeout=30) as r:
            r.read()
            return list(r.headers.items())
    except urllib.error.HTTPError as e:
        e.read()
        return list(e.headers.items())


ALLOWED_ORIGIN = "https://app.example.ro"
PUBLIC_HOST = "spvhub.example.ro"
LOGS: dict[str, Path] = {}


@pytest.fixture(scope="module")
def gateway(nginx_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, FakeService]]]:
    fakes = {s: FakeService(s) for s in gateway_conf.SERVICES}
    prefix: Path = tmp_path_factory.mktemp("gateway")
    port = free_port()
    env = {f"SPVHUB_{s.upper()}_PORT": str(f.port) for s, f in fakes.items()}
    env.update({"SPVHUB_GATEWAY_RATE_LOGIN": "6r/m", "SPVHUB_GATEWAY_BURST_LOGIN": "3",
                "SPVHUB_CORS_ALLOWED_ORIGINS": f"{ALLOWED_ORIGIN}, http://localhost:5173",
                "SPVHUB_PUBLIC_BASE_URL": f"https://{PUBLIC_HOST}"})
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
    LOGS["access"] = prefix / "nginx.log"
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
    out = subprocess.run([sys.executable, "-m", "spvhub_devtools.gateway_conf", "--template", str(TEMPLATE),
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


# ---------------------------------------------------------------------------------------------- hardening

SECRETS = {
    "/api/auth/anaf/callback?code=OAUTHCODE9f8e7d&state=STATEJWT.abc.def": ("OAUTHCODE9f8e7d", "STATEJWT.abc.def"),
    "/api/invitations/preview?token=INVTOKEN_x1y2z3": ("INVTOKEN_x1y2z3",),
    "/api/auth/anaf/delegations/open?token=DELEGTOKEN_q9w8&name=Ion": ("DELEGTOKEN_q9w8",),
    "/api/efactura/invoices?cif=RO14399840&access_token=BEARERLEAK77&limit=5": ("BEARERLEAK77",),
    "/api/auth/anaf/callback?co%64e=ENCODEDNAME55&x=1": ("ENCODEDNAME55",),
    "/api/auth/anaf/callback?State=UPPERSTATE33": ("UPPERSTATE33",),
    "/api/efactura/invoices?" + "&".join(f"k{i}_token=MANYSECRET{i}" for i in range(9)):
        tuple(f"MANYSECRET{i}" for i in range(9)),
}


def _log_lines() -> list[dict]:
    out = []
    for line in LOGS["access"].read_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_access_log_never_contains_secrets_from_query_strings(gateway: tuple[str, dict[str, FakeService]]) -> None:
    base, _ = gateway
    for path in SECRETS:
        rid = "redact-" + hashlib.sha1(path.encode()).hexdigest()
        status, _, body = call(base + path, headers={"X-Request-ID": rid})
        assert status == 200, path
        # the service itself still receives the query untouched
        assert json.loads(body)["path"] == path
    time.sleep(0.3)
    text = LOGS["access"].read_text()
    for secrets in SECRETS.values():
        for secret in secrets:
            assert secret not in text, secret
    entries = {e["request_id"]: e for e in _log_lines()}
    logged = {p: entries["redact-" + hashlib.sha1(p.encode()).hexdigest()]["uri"] for p in SECRETS}
    # the path is logged as is; harmless parameters are kept, sensitive values are replaced
    assert logged["/api/auth/anaf/callback?code=OAUTHCODE9f8e7d&state=STATEJWT.abc.def"] == \
        "/api/auth/anaf/callback?code=[REDACTED]&state=[REDACTED]"
    assert logged["/api/auth/anaf/delegations/open?token=DELEGTOKEN_q9w8&name=Ion"] == \
        "/api/auth/anaf/delegations/open?token=[REDACTED]&name=Ion"
    assert logged["/api/efactura/invoices?cif=RO14399840&access_token=BEARERLEAK77&limit=5"] == \
        "/api/efactura/invoices?cif=RO14399840&access_token=[REDACTED]&limit=5"
    assert logged["/api/auth/anaf/callback?co%64e=ENCODEDNAME55&x=1"] == "/api/auth/anaf/callback?[REDACTED]"
    # a harmless query is logged whole
    call(base + "/api/efactura/invoices?cif=RO1&limit=2", headers={"X-Request-ID": "plain-query"})
    time.sleep(0.2)
    assert {e["request_id"]: e for e in _log_lines()}["plain-query"]["uri"] == "/api/efactura/invoices?cif=RO1&limit=2"


def test_security_headers_on_every_kind_of_answer(gateway: tuple[str, dict[str, FakeService]]) -> None:
    base, _ = gateway
    for path, method in [("/api/efactura/invoices", "GET"), ("/api/nowhere", "GET"), ("/health", "GET"),
                         ("/health/live", "GET"), ("/openapi.json", "GET"), ("/docs/", "GET"),
                         ("/internal/x", "GET")]:
        lines = headers_of(base + path, method)
        h = {k.lower(): v for k, v in lines}
        names = [k.lower() for k, _ in lines]
        assert h["x-content-type-options"] == "nosniff", path
        assert h["referrer-policy"] == "no-referrer", path
        assert h["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in h["content-security-policy"], path
        assert names.count("content-security-policy") == 1 and names.count("x-request-id") == 1, path
        assert names.count("cache-control") <= 1, path
        assert "strict-transport-security" not in h, path  # plain http: no HSTS
        assert "access-control-allow-origin" not in h, path  # no Origin: nothing, and the service's "*" is dropped
    # API answers are not stored; the service's own choice (the public JWKS) is kept
    assert dict(headers_of(base + "/api/auth/login", "POST"))["Cache-Control"] == "no-store"
    assert dict(headers_of(base + "/api/efactura/invoices"))["Cache-Control"] == "no-store"
    assert dict(headers_of(base + "/.well-known/jwks.json"))["Cache-Control"] == "public, max-age=60"
    # the strict API CSP everywhere except where the service set its own
    api_csp = dict(headers_of(base + "/api/efactura/invoices"))["Content-Security-Policy"]
    assert api_csp.startswith("default-src 'none'")
    assert dict(headers_of(base + "/api/notifier/page"))["Content-Security-Policy"] == "default-src 'self'"
    pdf = dict(headers_of(base + "/api/efactura/invoices/1/pdf"))  # an inline PDF: the viewer needs no CSP
    assert "Content-Security-Policy" not in pdf and pdf["X-Content-Type-Options"] == "nosniff"
    # HSTS when TLS terminated in front of the gateway
    h = dict(headers_of(base + "/api/efactura/invoices", headers={"X-Forwarded-Proto": "https"}))
    assert h["Strict-Transport-Security"].startswith("max-age=31536000")
    # the 429 and 413 the gateway produces carry them too
    status, headers, _ = call(base + "/api/efactura/invoices", "POST", data=b"x" * (2 * 1024 * 1024))
    assert status == 413 and headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"


def test_docs_page_csp_allows_exactly_its_inline_script(gateway: tuple[str, dict[str, FakeService]]) -> None:
    base, _ = gateway
    status, headers, page = call(base + "/docs/")
    assert status == 200
    csp = headers["Content-Security-Policy"]
    scripts = re.findall(rb"<script>(.*?)</script>", page, re.S)
    assert len(scripts) == 1
    digest = "sha256-" + base64.b64encode(hashlib.sha256(scripts[0]).digest()).decode()
    assert f"script-src 'self' '{digest}'" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    js = dict(headers_of(base + "/docs/swagger-ui-bundle.js"))
    assert js["Content-Security-Policy"] == csp and js["Cache-Control"] == "no-cache"


def test_cors_answers_only_the_configured_origins(gateway: tuple[str, dict[str, FakeService]]) -> None:
    base, fakes = gateway
    before = fakes["portfolio"].hits
    pre = {"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization, content-type"}
    status, headers, _ = call(base + "/api/portfolio/companies", "OPTIONS", headers=pre)
    assert status == 204 and headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert "Authorization" in headers["Access-Control-Allow-Headers"] and headers["Vary"] == "Origin"
    assert fakes["portfolio"].hits == before  # answered by the gateway
    status, headers, _ = call(base + "/api/portfolio/companies", headers={"Origin": ALLOWED_ORIGIN})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "X-Request-ID" in headers["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Credentials" not in headers
    for evil in ("https://evil.example", "https://app.example.ro.evil.example", "null", ALLOWED_ORIGIN + ":443"):
        status, headers, _ = call(base + "/api/portfolio/companies", "OPTIONS", headers={**pre, "Origin": evil})
        assert "Access-Control-Allow-Origin" not in headers and "Access-Control-Allow-Methods" not in headers, evil
        status, headers, _ = call(base + "/api/portfolio/companies", headers={"Origin": evil})
        assert "Access-Control-Allow-Origin" not in headers, evil


def test_no_host_header_reflection(gateway: tuple[str, dict[str, FakeService]]) -> None:
    base, _ = gateway
    evil = {"Host": "evil.example", "X-Forwarded-Host": "evil2.example"}
    status, headers, body = call(base + "/api/auth/me", headers=evil)
    assert json.loads(body)["host"] == PUBLIC_HOST
    status, headers, body = call(base + "/docs", headers=evil)
    assert status == 302 and headers["Location"] == "/docs/"
    assert b"evil" not in body and "evil" not in json.dumps(headers)
    status, headers, body = call(base + "/api/nowhere", headers=evil)
    assert b"evil" not in body and "evil" not in json.dumps(headers)


def test_request_bodies_are_capped_per_endpoint(gateway: tuple[str, dict[str, FakeService]]) -> None:
    base, fakes = gateway
    mib = 1024 * 1024
    before = fakes["efactura"].hits
    status, _, body = call(base + "/api/efactura/invoices", "POST", data=b"x" * (mib + 1))
    assert status == 413 and json.loads(body)["error"]["code"] == "body_too_large"
    status, _, body = call(base + "/api/efactura/companies/RO1/submissions", "POST", data=b"x" * (12 * mib))
    assert status == 413 and json.loads(body)["error"]["code"] == "body_too_large"
    assert fakes["efactura"].hits == before  # refused at the gateway
    # the endpoints that take files get their larger limit, and a small body passes anywhere
    status, _, body = call(base + "/api/efactura/companies/RO1/submissions", "POST", data=b"x" * (5 * mib))
    assert status == 200 and json.loads(body)["received"] == 5 * mib
    status, _, body = call(base + "/api/portfolio/companies/RO1/candidates", "POST", data=b"x" * (2 * mib))
    assert status == 200 and json.loads(body)["received"] == 2 * mib
    status, _, body = call(base + "/api/efactura/invoices", "POST", data=b"x" * 1000)
    assert status == 200
    conf = (LOGS["access"].parent / "nginx.conf").read_text()
    for b in gateway_conf.BODY_LIMITS:
        assert f"client_max_body_size {b.max_bytes // 1024}k;" in conf
    assert f"client_max_body_size {gateway_conf.DEFAULT_BODY_LIMIT // 1024}k;" in conf
