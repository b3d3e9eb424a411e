"""An isolated spvhub system for end-to-end tests: the ANAF emulator, the SMTP capture and all six
services as real processes on free ports, with their own databases, bucket and Kafka topic prefix,
against the real PostgreSQL, Kafka and MinIO started by `./dev infra`."""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from spvhub_devtools.testing import ROOT, STACK

SERVICES = ["auth", "portfolio", "invitations", "efactura", "etransport", "notifier", "webhooks"]
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class System:
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    scenario: str = "demo.json"
    extra_env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logdir: Path = field(default_factory=lambda: ROOT / ".stack" / "logs" / "e2e")
    service_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    gateway: bool = False
    web: bool = False  # spvhub web behind the gateway (implies gateway); ANAF then returns to the web's callback

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def emulator(self) -> str:
        return self.url("emulator")

    @property
    def public_url(self) -> str:
        """Where people and API clients reach the system: the gateway when it runs, else auth directly."""
        return self.url("gateway") if self.gateway else self.url("auth")

    def port_env(self) -> dict[str, str]:
        """This system's ports in the SPVHUB_<NAME>_PORT form that ./dev, the gateway and the seed read."""
        env = {f"SPVHUB_{s.upper()}_PORT": str(self.ports[s]) for s in SERVICES}
        env.update(SPVHUB_WEB_PORT=str(self.ports["web"]))
        env.update(SPVHUB_GATEWAY_PORT=str(self.ports["gateway"]), SPVHUB_EMULATOR_PORT=str(self.ports["emulator"]),
                   SPVHUB_SMTP_PORT=str(self.ports["smtp"]), SPVHUB_MAILBOX_HTTP_PORT=str(self.ports["mailhttp"]))
        return env

    @property
    def prefix(self) -> str:
        return f"e2e{self.run_id}."

    def database(self, service: str) -> str:
        return f"e2e_{self.run_id}_{service}"

    def env(self, service: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPVHUB_")}
        env.update({
            "SPVHUB_ENV": "test", "SPVHUB_HTTP_PORT": str(self.ports[service]),
            "SPVHUB_PG_PORT": STACK["SPVHUB_PG_PORT"], "SPVHUB_PG_DATABASE": self.database(service),
            "SPVHUB_KAFKA_BOOTSTRAP": f"127.0.0.1:{STACK['SPVHUB_KAFKA_PORT']}",
            "SPVHUB_KAFKA_TOPIC_PREFIX": self.prefix,
            "SPVHUB_S3_ENDPOINT": f"127.0.0.1:{STACK['SPVHUB_MINIO_PORT']}",
            "SPVHUB_S3_ACCESS_KEY": STACK["SPVHUB_MINIO_USER"], "SPVHUB_S3_SECRET_KEY": STACK["SPVHUB_MINIO_PASSWORD"],
            "SPVHUB_S3_BUCKET": f"e2e-{self.run_id}",
            "SPVHUB_ANAF_EMULATOR_URL": self.emulator, "SPVHUB_CLOCK_URL": f"{self.emulator}/__admin/clock",
            "SPVHUB_JWKS_URL": f"{self.url('auth')}/.well-known/jwks.json",
            "SPVHUB_SERVICE_TOKEN": self.service_token,
            "SPVHUB_PUBLIC_BASE_URL": self.public_url,
            "SPVHUB_ANAF_REDIRECT_URI": f"{self.public_url}/api/auth/anaf/callback",
            "SPVHUB_AUTH_URL": self.url("auth"), "SPVHUB_PORTFOLIO_URL": self.url("portfolio"),
            "SPVHUB_INVITATIONS_URL": self.url("invitations"), "SPVHUB_EFACTURA_URL": self.url("efactura"),
            "SPVHUB_ETRANSPORT_URL": self.url("etransport"), "SPVHUB_NOTIFIER_URL": self.url("notifier"),
            "SPVHUB_SMTP_HOST": "127.0.0.1", "SPVHUB_SMTP_PORT": str(self.ports["smtp"]),
            "SPVHUB_ANAF_BUDGET_DATABASE": f"e2e_{self.run_id}_budget",
            "SPVHUB_OUTBOX_POLL_INTERVAL": "0.05", "SPVHUB_LOG_LEVEL": "INFO",
        })
        if self.web:
            env["SPVHUB_ANAF_REDIRECT_URI"] = f"{self.public_url}/anaf/callback"
        env.update(self.extra_env)
        return env

    def web_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPVHUB_")}
        env.update({"SPVHUB_ENV": "test", "SPVHUB_WEB_HTTP_PORT": str(self.ports["web"]),
                    "SPVHUB_WEB_GATEWAY_URL": self.url("gateway"), "SPVHUB_ANAF_EMULATOR_URL": self.emulator,
                    "SPVHUB_WEB_SESSION_KEY": secrets.token_urlsafe(32)})
        return env

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.logdir.mkdir(parents=True, exist_ok=True)
        log = open(self.logdir / f"{self.run_id}-{name}.log", "ab")
        self.procs[name] = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def _wait_http(self, name: str, path: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.logdir}/{self.run_id}-{name}.log")
            try:
                if httpx.get(f"{self.url(name)}{path}", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready within {timeout}s; see {self.logdir}/{self.run_id}-{name}.log")

    def scenario_file(self) -> Path:
        src = ROOT / "emulator" / "anaf_emulator" / "scenarios" / self.scenario
        data = json.loads(src.read_text())
        for app in data.get("applications", []):
            app["redirect_uris"].append(f"{self.public_url}/api/auth/anaf/callback")
            app["redirect_uris"].append(f"{self.public_url}/anaf/callback")
        out = self.logdir / f"{self.run_id}-scenario.json"
        self.logdir.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data))
        return out

    def start(self, services: list[str] | None = None) -> System:
        self.gateway = self.gateway or self.web
        for name in ["emulator", "smtp", "mailhttp", "gateway", "web", *SERVICES]:
            self.ports[name] = free_port()
        self._spawn("emulator", [PY, "-m", "anaf_emulator", "--scenario", str(self.scenario_file()), "--host",
                                 "127.0.0.1", "--port", str(self.ports["emulator"]), "--admin"], dict(os.environ))
        self._wait_http("emulator", "/__admin/health")
        self._spawn("mailbox", [PY, "-m", "spvhub_devtools.devmail", "--smtp-port", str(self.ports["smtp"]),
                                "--http-port", str(self.ports["mailhttp"]),
                                "--dir", str(self.logdir / f"{self.run_id}-mail")], dict(os.environ))
        self.ports["mailbox"] = self.ports["mailhttp"]
        self._wait_http("mailbox", "/messages")
        for s in services or SERVICES:
            rc = subprocess.run([PY, "-m", f"spvhub_{s}", "migrate"], cwd=ROOT, env=self.env(s),
                                capture_output=True, timeout=120)
            if rc.returncode != 0:
                out = rc.stdout.decode()[-2000:] + rc.stderr.decode()[-2000:]
                raise RuntimeError(f"migrations of {s} failed: {out}")
            self._spawn(s, [PY, "-m", f"spvhub_{s}"], self.env(s))
        for s in services or SERVICES:
            self._wait_http(s, "/health/ready", timeout=90)
        if self.gateway:
            self._start_gateway()
        if self.web:
            self._spawn("web", [PY, "-m", "spvhub_web"], self.web_env())
            self._wait_http("web", "/health/ready", timeout=60)
        import e2ekit  # sign-ups through any of this system's URLs read their verification e-mail here
        e2ekit.MAILBOXES.update({self.url(n): self.url("mailbox") for n in ("auth", "gateway", "web")})
        return self

    def _start_gateway(self) -> None:
        prefix = self.logdir / f"{self.run_id}-nginx"
        (prefix / "tmp").mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.port_env()}
        rc = subprocess.run([PY, "-m", "spvhub_devtools.gateway_conf", "--out", str(prefix / "nginx.conf"),
                             "--prefix", str(prefix)], cwd=ROOT, env=env, capture_output=True, timeout=120)
        if rc.returncode != 0:
            raise RuntimeError(f"gateway config failed: {rc.stderr.decode()[-2000:]}")
        self._spawn("gateway", ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
                    env)
        self._wait_http("gateway", "/health", timeout=30)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def restart(self, name: str) -> None:
        self._spawn(name, [PY, "-m", f"spvhub_{name}"], self.env(name))
        self._wait_http(name, "/health/ready", timeout=90)

    def stop(self) -> None:
        for proc in list(self.procs.values())[::-1]:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()
        asyncio.run(self._drop_databases())
        from spvhub_devtools.testing import delete_topics
        delete_topics(self.prefix)

    async def _drop_databases(self) -> None:
        from spvhub_common.db import drop_database
        from spvhub_devtools.testing import make_settings
        s = make_settings()
        for svc in [*SERVICES, "budget"]:
            await drop_database(s, self.database(svc))

    # -- helpers for tests -------------------------------------------------
    def admin(self, method: str, path: str, **kw: object) -> httpx.Response:
        r = httpx.request(method, f"{self.emulator}/__admin/{path.lstrip('/')}", timeout=30, **kw)  # type: ignore[arg-type]
        r.raise_for_status()
        return r

    def mails(self) -> list[dict]:
        return httpx.get(f"{self.url('mailbox')}/messages", timeout=10).json()
