"""The person's address through spvhub web and the real nginx gateway: the web (which calls the gateway for the
person) names them in X-Forwarded-For, the gateway believes that only from its trusted proxies (the web), so its
login rate limit is per person, and auth (which trusts the gateway) records the person on their session.

Topology, all on loopback: a person (127.0.0.10/11, or an untrusted 127.0.0.2) -> nginx (trusts only the web's
127.0.0.3) -> spvhub web (trusts the gateway's 127.0.0.1) -> nginx from 127.0.0.3 -> a recording auth, which resolves
the client exactly as the services do (spvhub_common.clientaddr, trusting the gateway)."""
from __future__ import annotations

import http.client
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from spvhub_common import clientaddr
from spvhub_devtools import gateway_conf
from spvhub_web.bootstrap import build_app
from spvhub_web.settings import Settings as WebSettings

from tests.platform.test_gateway import TEMPLATE, free_port

WEB_ADDR = "127.0.0.3"        # the web's outbound address: the only proxy the gateway trusts
GATEWAY_ADDR = "127.0.0.1"    # the gateway's address as the web and auth see it
AUTH_TRUSTS = [f"{GATEWAY_ADDR}/32"]
ALICE, BOB, STRANGER = "127.0.0.10", "127.0.0.11", "127.0.0.2"
LOGIN_BURST = 2


class FakePlatform:
    """Every service at one port. Auth's login records what it was told and resolves the client as auth does; its
    sessions list shows the address the login was recorded with."""

    def __init__(self) -> None:
        self.logins: list[dict[str, str]] = []
        self.sessions: list[dict[str, str]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, code: int, body: object) -> None:
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _address(self) -> str:
                return clientaddr.resolve(self.client_address[0], self.headers.get_all("X-Forwarded-For") or [],
                                          AUTH_TRUSTS)

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path == "/api/auth/login":
                    seen = {"address": self._address(), "xff": self.headers.get("X-Forwarded-For", ""),
                            "user_agent": self.headers.get("User-Agent", "")}
                    outer.logins.append(seen)
                    if body.get("password") != "right":
                        return self._send(401, {"error": {"code": "invalid_credentials", "message": "no",
                                                          "details": {}}})
                    outer.sessions.append({"id": f"s{len(outer.sessions)}", "user_agent": seen["user_agent"],
                                           "address": seen["address"], "created_at": "2026-12-07T00:00:00Z",
                                           "last_used_at": "2026-12-07T00:00:00Z", "current": True})
                    return self._send(200, {"access_token": "at", "refresh_token": "rt",
                                            "user": {"id": "u1", "name": "Ana", "email": body.get("email")}})
                self._send(404, {"error": {"code": "not_found", "message": "no", "details": {}}})

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/health/ready":
                    return self._send(200, {"status": "ok"})
                if self.path == "/api/auth/me":
                    return self._send(200, {"id": "u1", "name": "Ana", "email": "ana@example.ro",
                                            "email_verified": True})
                if self.path == "/api/auth/sessions":
                    return self._send(200, {"items": outer.sessions})
                if self.path.startswith("/api/notifier/"):
                    return self._send(200, {"unread": 0})
                self._send(404, {"error": {"code": "not_found", "message": "no", "details": {}}})

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def wait_port(port: int) -> None:
    import socket

    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def stack(nginx_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FakePlatform, Path]]:
    fake = FakePlatform()
    web_port, gw_port = free_port(), free_port()
    prefix: Path = tmp_path_factory.mktemp("gateway-client")
    env = {f"SPVHUB_{s.upper()}_PORT": str(fake.port) for s in gateway_conf.SERVICES}
    env.update({"SPVHUB_WEB_PORT": str(web_port), "SPVHUB_GATEWAY_TRUSTED_PROXIES": f"{WEB_ADDR}/32",
                "SPVHUB_GATEWAY_RATE_LOGIN": "6r/m", "SPVHUB_GATEWAY_BURST_LOGIN": str(LOGIN_BURST),
                "SPVHUB_PUBLIC_BASE_URL": f"http://127.0.0.1:{gw_port}"})
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    try:
        assert gateway_conf.main(["--template", str(TEMPLATE), "--out", str(prefix / "nginx.conf"),
                                  "--prefix", str(prefix), "--listen", f"127.0.0.1:{gw_port}",
                                  "--openapi-from", "contracts"]) == 0
    finally:
        mp.undo()
    conf = str(prefix / "nginx.conf")
    check = subprocess.run([nginx_bin, "-t", "-p", str(prefix), "-c", conf], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    log_path = prefix / "nginx.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([nginx_bin, "-p", str(prefix), "-c", conf, "-g", "daemon off;"], stdout=log, stderr=log)

    settings = WebSettings(env="test", gateway_url=f"http://127.0.0.1:{gw_port}", anaf_emulator_url="",
                           trusted_proxies=[f"{GATEWAY_ADDR}/32"])
    app = build_app(settings, transport=httpx.AsyncHTTPTransport(local_address=WEB_ADDR))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=web_port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_port(gw_port)
        wait_port(web_port)
        yield f"127.0.0.1:{gw_port}", fake, log_path
    finally:
        server.should_exit = True
        thread.join(10)
        proc.terminate()
        proc.wait(10)
        log.close()
        fake.server.shutdown()


class Person:
    """A browser at one loopback address: keeps its cookie, posts the CSRF token of the last page."""

    def __init__(self, gateway: str, source: str, user_agent: str) -> None:
        self.host, port = gateway.split(":")
        self.port, self.source, self.ua = int(port), source, user_agent
        self.cookie = ""
        self.csrf = ""

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, str]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30, source_address=(self.source, 0))
        h = {"User-Agent": self.ua, **(headers or {})}
        if self.cookie:
            h["Cookie"] = self.cookie
        body = None
        if form is not None:
            body = urlencode({"csrf": self.csrf, **form})
            h["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        text = r.read().decode()
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                self.cookie = v.split(";", 1)[0]
        m = re.search(r'name="csrf" value="([^"]+)"', text)
        if m:
            self.csrf = m.group(1)
        conn.close()
        return r.status, text

    def login(self, password: str, headers: dict[str, str] | None = None) -> int:
        if not self.csrf:
            self.request("GET", "/login")
        return self.request("POST", "/login", {"email": "ana@example.ro", "password": password}, headers)[0]


def test_two_people_logging_in_through_the_web_are_limited_separately(stack: tuple[str, FakePlatform, Path]) -> None:
    gateway, fake, _log = stack
    alice, bob = Person(gateway, ALICE, "AliceBrowser/1"), Person(gateway, BOB, "BobBrowser/1")
    before = len(fake.logins)
    statuses = [alice.login("wrong") for _ in range(LOGIN_BURST + 3)]
    # the gateway keys its login zone on Alice (the web named her), so she runs out past the burst...
    assert statuses[:LOGIN_BURST + 1] == [401] * (LOGIN_BURST + 1), statuses
    assert 429 in statuses[LOGIN_BURST + 1:], statuses
    alice_reached = fake.logins[before:]
    assert len(alice_reached) == statuses.count(401)
    assert {x["address"] for x in alice_reached} == {ALICE}
    assert {x["user_agent"] for x in alice_reached} == {"AliceBrowser/1"}
    # ...while Bob, through the same web, is not limited by her attempts
    assert bob.login("wrong") == 401
    assert fake.logins[-1]["address"] == BOB


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(stack: tuple[str, FakePlatform, Path]) -> None:
    gateway, fake, log = stack
    stranger = Person(gateway, STRANGER, "Stranger/1")
    before = len(fake.logins)
    # a new claimed address every time: were it believed, every attempt would have a fresh limit
    statuses = [stranger.login("wrong", {"X-Forwarded-For": f"198.51.100.{i}"}) for i in range(LOGIN_BURST + 3)]
    assert statuses[:LOGIN_BURST + 1] == [401] * (LOGIN_BURST + 1) and 429 in statuses[LOGIN_BURST + 1:], statuses
    reached = fake.logins[before:]
    assert reached and {x["address"] for x in reached} == {STRANGER}
    assert not any("198.51.100" in x["xff"] for x in reached), reached
    # straight at the gateway's API too: the claimed address names no one
    conn = http.client.HTTPConnection(*gateway.split(":"), timeout=10, source_address=(STRANGER, 0))
    conn.request("POST", "/api/auth/login", body=json.dumps({"email": "x@example.ro", "password": "wrong"}),
                 headers={"Content-Type": "application/json", "X-Forwarded-For": "198.51.100.77"})
    assert conn.getresponse().status == 429   # the same zone key as the stranger's own attempts
    conn.close()
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    stranger_lines = [e for e in entries if e.get("peer_addr") == STRANGER]
    assert stranger_lines and {e["remote_addr"] for e in stranger_lines} == {STRANGER}


def test_the_sessions_list_shows_the_persons_address(stack: tuple[str, FakePlatform, Path]) -> None:
    gateway, fake, _log = stack
    carol = Person(gateway, "127.0.0.12", "CarolBrowser/2")
    assert carol.login("right") == 303
    status, page = carol.request("GET", "/account")
    assert status == 200, page
    shown = re.findall(r'<td>([^<]*)<span class="muted">· ([^<]+)</span>', page)
    assert shown == [("CarolBrowser/2 ", "127.0.0.12")], shown   # not the web's address, nor the gateway's


def test_the_gateway_believes_forwarded_for_only_from_configured_proxies() -> None:
    values = {"SPVHUB_GATEWAY_PORT": "18000", **{f"SPVHUB_{s.upper()}_PORT": "1" for s in gateway_conf.SERVICES}}
    conf = gateway_conf.render(TEMPLATE.read_text(), values={**values, "SPVHUB_GATEWAY_TRUSTED_PROXIES":
                                                             "127.0.0.3, 10.0.0.0/8"}, listen="127.0.0.1:1")
    assert re.findall(r"set_real_ip_from (\S+);", conf) == ["127.0.0.3/32", "10.0.0.0/8"]
    assert "real_ip_header X-Forwarded-For;" in conf and "real_ip_recursive on;" in conf
    # the limit zones key on the (realip) client address
    assert re.findall(r"limit_req_zone (\S+)", conf) == ["$binary_remote_addr"] * len(gateway_conf.RATE_ZONES)
    # none configured: no header is believed at all
    assert "set_real_ip_from" not in gateway_conf.render(TEMPLATE.read_text(), values=values, listen="127.0.0.1:1")
    with pytest.raises(ValueError, match="SPVHUB_GATEWAY_TRUSTED_PROXIES"):
        gateway_conf.render(TEMPLATE.read_text(), values={**values, "SPVHUB_GATEWAY_TRUSTED_PROXIES": "web"},
                            listen="127.0.0.1:1")
