"""The whole-system chaos run: its own PostgreSQL, Kafka and MinIO, two processes of every service behind a
failover balancer, the ANAF emulator with 5 % 5xx, 1 % timeouts and 50-200 ms latency, a backlog of companies
being synced while invitations, submissions, transports and webhooks are in flight; every service process is
`kill -9`ed once and restarted, Kafka, MinIO and PostgreSQL each restarted once. Then it waits for the system to
converge and checks that nothing was lost or done twice, and prints the figures.

Short form: `pytest tests/chaos` (marker `chaos`); full form: `python tools/chaos.py --full`."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

import httpx
from chaos_stack import ChaosInfra, free_port
from spvhub_devtools.testing import ROOT
from system import PY, SERVICES, System

FIRM = "39812755"
FIRM_CERT, CARRIER, CARRIER_CERT = "contabil", "36054478", "transportator"
PASSWORD = "parola-haos-2026"
FAULTS = {"family": "*", "latency_ms": [50, 200], "error_rate": 0.05, "error_status": 503, "timeout_rate": 0.01,
          "timeout_seconds": 8}
# Timings shortened so a run converges in minutes (what each one means: the services' settings.py)
TUNING = {
    "SPVHUB_LOG_LEVEL": "WARNING", "SPVHUB_OUTBOX_POLL_INTERVAL": "0.1",
    # efactura
    "SPVHUB_SCHEDULER_TICK_SECONDS": "0.5", "SPVHUB_LEASE_SECONDS": "5", "SPVHUB_RETRY_BASE_SECONDS": "1",
    "SPVHUB_RETRY_MAX_SECONDS": "10", "SPVHUB_ANAF_TIMEOUT": "5", "SPVHUB_ANAF_CALLS_PER_MINUTE": "100000",
    "SPVHUB_SYNC_INTERVAL_SECONDS": "15", "SPVHUB_WINDOW_END_MARGIN_SECONDS": "5",
    "SPVHUB_SUBMISSION_LEASE_SECONDS": "5", "SPVHUB_SUBMISSION_WORKER_INTERVAL_SECONDS": "0.5",
    "SPVHUB_SUBMISSION_UNKNOWN_CHECK_SECONDS": "2", "SPVHUB_SUBMISSION_FIRST_CHECK_SECONDS": "2",
    "SPVHUB_SUBMISSION_RETRY_SECONDS": "2", "SPVHUB_SUBMISSION_UNKNOWN_GRACE_SECONDS": "30",
    # etransport, notifier, webhooks, auth
    "SPVHUB_INFO_POLL_INTERVAL": "10", "SPVHUB_MANUAL_POLL_MIN_SECONDS": "1",
    "SPVHUB_EMAIL_SEND_INTERVAL": "0.5", "SPVHUB_SEND_INTERVAL": "0.5", "SPVHUB_ANAF_HTTP_TIMEOUT": "10",
}
WEBHOOK_TUNING = {"SPVHUB_LEASE_SECONDS": "10", "SPVHUB_RETRY_BASE_SECONDS": "1", "SPVHUB_RETRY_MAX_SECONDS": "5"}


@dataclass
class Plan:
    clients: int             # client companies that accept the firm's invitation (synced with the firm)
    per_company_per_day: float
    days: int
    submissions: int
    gap: float               # seconds between chaos actions
    pg_down: float           # seconds PostgreSQL stays down
    converge_timeout: float

    @property
    def companies(self) -> int:
        return self.clients + 1


SHORT = Plan(clients=2, per_company_per_day=1.5, days=10, submissions=4, gap=3, pg_down=4, converge_timeout=300)
FULL = Plan(clients=19, per_company_per_day=4, days=55, submissions=20, gap=10, pg_down=10, converge_timeout=1800)


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------- balancer
class Balancer:
    """One TCP front port per service, forwarding each connection to one of its processes (round robin, the
    other one when a process refuses): what a Kubernetes Service does for two pods."""

    def __init__(self, routes: dict[int, list[int]]) -> None:
        self.routes = routes
        self.loop = asyncio.new_event_loop()
        self.turn: Counter[int] = Counter()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.ready = threading.Event()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            for front in self.routes:
                await asyncio.start_server(lambda r, w, f=front: self._pipe(f, r, w), "127.0.0.1", front,
                                           reuse_address=True)
            self.ready.set()
            await asyncio.Event().wait()
        self.loop.run_until_complete(main())

    async def _pipe(self, front: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        backends = self.routes[front]
        self.turn[front] += 1
        order = backends[self.turn[front] % len(backends):] + backends[:self.turn[front] % len(backends)]
        for port in order:
            try:
                br, bw = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                continue
        else:
            writer.close()
            return

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                try:
                    dst.close()
                except Exception:  # noqa: BLE001
                    pass
        await asyncio.gather(copy(reader, bw), copy(br, writer))

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(30):
            raise RuntimeError("balancer did not start")


# ---------------------------------------------------------------------------------------------- webhooks
class WebhookReceiver:
    """An integrator's endpoint: records every request (webhook-id, event) and fails 5 % of them with a 500."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.refused = 0
        self.lock = threading.Lock()
        rng = random.Random(7)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with owner.lock:
                    fail = rng.random() < 0.05
                    if fail:
                        owner.refused += 1
                    else:
                        event = json.loads(body)
                        owner.received.append({"webhook_id": self.headers.get("webhook-id"), "event": event})
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/spvhub"


# ---------------------------------------------------------------------------------------------- the system
@dataclass
class Figures:
    kills: list[str] = field(default_factory=list)
    restarts: list[tuple[str, float]] = field(default_factory=list)  # (what, seconds until it answered again)
    readiness: dict[str, Any] = field(default_factory=dict)
    client_retries: Counter[str] = field(default_factory=Counter)
    chaos_errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    chaos_done: float = 0.0
    converged: float = 0.0


class ChaosSystem(System):
    """tests/e2e/system.py's System, pointed at a ChaosInfra, with two processes per service behind a Balancer."""

    def __init__(self, infra: ChaosInfra, plan: Plan, logdir: Path) -> None:
        super().__init__(logdir=logdir)
        self.infra = infra
        self.plan = plan
        self.backends: dict[str, list[int]] = {}
        self.figures = Figures()
        self.clients: list[dict[str, Any]] = []

    # -- processes -----------------------------------------------------------------------------------
    def env(self, service: str, instance: int = 0) -> dict[str, str]:  # type: ignore[override]
        env = super().env(service)
        env.update(self.infra.service_env())
        env.update(TUNING)
        if service == "webhooks":
            env.update(WEBHOOK_TUNING)
        env["SPVHUB_WEBHOOKS_URL"] = self.url("webhooks")
        env["SPVHUB_HTTP_PORT"] = str(self.backends[service][instance]) if self.backends else env["SPVHUB_HTTP_PORT"]
        env["SPVHUB_SERVICE_INSTANCE"] = f"{service}-{instance + 1}"
        return env

    def scenario_file(self) -> Path:
        """The demo scenario, the firm's certificate holding rights on `clients` more companies, a backlog
        generated for the clients only (the firm's own sent invoices are then exactly the submissions)."""
        from anaf_emulator.cif import make_cif
        data = json.loads((ROOT / "emulator" / "anaf_emulator" / "scenarios" / "demo.json").read_text())
        cert = next(c for c in data["certificates"] if c["id"] == FIRM_CERT)
        extra = max(0, self.plan.clients - (len(cert["rights"]) - 1))
        for i in range(extra):
            cui = make_cif(str(61_200_000 + 37 * i))
            cert["rights"].append(cui)
            data["companies"].append({"cui": cui, "name": f"CLIENT HAOS {i + 1} SRL", "county": "CJ",
                                      "city": "Cluj-Napoca", "street": "Str. Memorandumului", "number": str(i + 1),
                                      "postal_code": "400114", "nr_reg_com": f"J12/{900 + i}/2020", "vat": True,
                                      "efactura_registered": True, "caen": "4690", "phone": "0264000000",
                                      "registered_since": "2020-01-15"})
        clients = [c for c in cert["rights"] if c != FIRM][:self.plan.clients]
        cert["rights"] = [FIRM, *clients]
        self.client_cifs = clients
        data["generators"]["invoices"] = {"per_company_per_day": self.plan.per_company_per_day,
                                          "days": self.plan.days, "cuis": clients, "external_partners": 15}
        for app in data.get("applications", []):
            app["redirect_uris"].append(f"{self.public_url}/api/auth/anaf/callback")
        data.setdefault("switches", {})["rate_limit_per_minute"] = 0  # the services' budget is raised too
        out = self.logdir / f"{self.run_id}-scenario.json"
        self.logdir.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data))
        return out

    def start(self, services: list[str] | None = None) -> ChaosSystem:  # type: ignore[override]
        for name in ["emulator", "smtp", "mailhttp", "gateway", "web", *SERVICES]:
            self.ports[name] = free_port()
        self.backends = {s: [free_port(), free_port()] for s in SERVICES}
        self.balancer = Balancer({self.ports[s]: self.backends[s] for s in SERVICES})
        self.balancer.start()
        scenario = self.scenario_file()
        self._spawn("emulator", [PY, "-m", "anaf_emulator", "--scenario", str(scenario), "--host", "127.0.0.1",
                                 "--port", str(self.ports["emulator"]), "--admin"], dict(os.environ))
        self._wait_http("emulator", "/__admin/health")
        self._spawn("mailbox", [PY, "-m", "spvhub_devtools.devmail", "--smtp-port", str(self.ports["smtp"]),
                                "--http-port", str(self.ports["mailhttp"]),
                                "--dir", str(self.logdir / f"{self.run_id}-mail")], dict(os.environ))
        self.ports["mailbox"] = self.ports["mailhttp"]
        self._wait_http("mailbox", "/messages")
        for s in SERVICES:
            rc = subprocess.run([PY, "-m", f"spvhub_{s}", "migrate"], cwd=ROOT, env=self.env(s),
                                capture_output=True, timeout=180)
            if rc.returncode != 0:
                out = rc.stdout.decode()[-2000:] + rc.stderr.decode()[-2000:]
                raise RuntimeError(f"migrations of {s} failed: {out}")
        for s in SERVICES:
            for i in (0, 1):
                self.spawn_instance(s, i)
        for s in SERVICES:
            for i in (0, 1):
                self.wait_instance(s, i, "/health/ready", 180)
        return self

    def spawn_instance(self, service: str, i: int) -> None:
        self._spawn(f"{service}-{i + 1}", [PY, "-m", f"spvhub_{service}"], self.env(service, i))

    def instance_url(self, service: str, i: int) -> str:
        return f"http://127.0.0.1:{self.backends[service][i]}"

    def wait_instance(self, service: str, i: int, path: str, timeout: float) -> float:
        t0 = time.monotonic()
        name = f"{service}-{i + 1}"
        while time.monotonic() - t0 < timeout:
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.logdir}/{self.run_id}-{name}.log")
            try:
                if httpx.get(f"{self.instance_url(service, i)}{path}", timeout=3).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} not answering {path} within {timeout}s")

    def stop(self) -> None:
        for proc in list(self.procs.values()):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log(f"{name} ignored SIGTERM for 20 s: killed")
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()  # the databases go with the chaos PostgreSQL

    # -- a client that retries like an integrator would ----------------------------------------------
    def call(self, method: str, path: str, token: str | None = None, ok: tuple[int, ...] = (200, 201, 202),
             timeout: float = 180, **kw: Any) -> httpx.Response:
        """`/api/<service>/...` through that service's balancer; retries connection errors and 5xx."""
        service = path.split("/")[2] if path.startswith("/api/") else "auth"
        headers = dict(kw.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            try:
                r = httpx.request(method, f"{self.url(service)}{path}", headers=headers, timeout=60, **kw)
                if r.status_code in ok:
                    return r
                last = f"{r.status_code} {r.text[:300]}"
                if r.status_code < 500 and r.status_code not in (403, 404, 409, 429):
                    raise AssertionError(f"{method} {path} -> {last}")
                self.figures.client_retries[f"{r.status_code}"] += 1
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__} {exc}"
                self.figures.client_retries[type(exc).__name__] += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path}: no answer in {ok} within {timeout:g}s (last: {last})")
            time.sleep(0.5)

    def mails(self, to: str | None = None) -> list[dict[str, Any]]:
        params = {"to": to.lower()} if to else None
        return list(httpx.get(f"{self.url('mailbox')}/messages", params=params, timeout=30).json())

    def wait_for(self, what: str, fn: Any, timeout: float = 180) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = fn()
            except (httpx.HTTPError, AssertionError, KeyError, ValueError):
                value = None
            if value:
                return value
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}")

    # -- people ----------------------------------------------------------------------------------------
    def user(self, email: str, name: str) -> str:
        r = self.call("POST", "/api/auth/signup", json={"email": email, "password": PASSWORD, "name": name,
                                                        "locale": "ro"}, ok=(201, 409))
        if r.status_code == 409:  # a retried sign-up whose first answer was lost
            r = self.call("POST", "/api/auth/login", json={"email": email, "password": PASSWORD}, ok=(200,))
        token = str(r.json()["access_token"])
        if r.json()["user"].get("email_verified"):
            return token

        def confirmed() -> bool:
            for m in reversed(self.mails(email)):
                found = re.search(r"verify-email\?token=([\w\-]+)", m.get("text", ""))
                if found:
                    return self.call("POST", "/api/auth/email/verify", json={"token": found.group(1)},
                                     ok=(200, 400)).status_code == 200
            return False
        self.wait_for(f"the verification e-mail to {email}", confirmed)
        return token

    def authorize(self, token: str, cif: str, certificate: str) -> None:
        r = self.call("POST", "/api/auth/anaf/authorizations", token, json={"company_cif": cif}, ok=(200, 201))
        url = r.json()["authorize_url"]
        at_anaf = httpx.get(f"{url}{'&' if '?' in url else '?'}{urlencode({'emulator_certificate': certificate})}",
                            timeout=60)
        assert at_anaf.status_code in (302, 303), at_anaf.text
        back = urlparse(at_anaf.headers["location"])
        self.call("GET", f"{back.path}?{back.query}", ok=(200, 201, 303))
        self.wait_for(f"{cif} to be verified", lambda: self.call(
            "GET", f"/api/portfolio/companies/{cif}", token).json().get("verification") == "verified")

    def register_company(self, token: str, cif: str) -> None:
        self.call("POST", "/api/portfolio/companies", token, json={"cif": f"RO{cif}"}, ok=(200, 201, 409))

    # -- the workload ------------------------------------------------------------------------------------
    def setup_firm_and_carrier(self) -> None:
        """Before the faults: the firm and the carrier authorize at ANAF (a person at a browser, not chaos)."""
        # discovery reads the certificate's rights from the holder's own e-Factura list, which names them only when
        # the list has a message: one invoice received from a client (the firm's sent ones stay the submissions)
        from datetime import datetime, timedelta
        at = (datetime.fromisoformat(self.admin("GET", "clock").json()["now"]) - timedelta(days=1)).isoformat()
        self.admin("POST", "invoices", json={"seller": self.client_cifs[0], "buyer": FIRM, "kind": "invoice",
                                             "at": at})
        self.firm_token = self.user(f"firma-{self.run_id}@contabil-expert.ro", "Maria Ionescu")
        self.register_company(self.firm_token, FIRM)
        self.authorize(self.firm_token, FIRM, FIRM_CERT)
        self.call("PATCH", f"/api/portfolio/companies/{FIRM}", self.firm_token,
                  json={"provides_accounting_services": True}, ok=(200,))
        self.carrier_token = self.user(f"transport-{self.run_id}@trans-rapid.ro", "Andrei Popescu")
        self.register_company(self.carrier_token, CARRIER)
        self.authorize(self.carrier_token, CARRIER, CARRIER_CERT)
        self.wait_for("discovery of the firm's clients", lambda: len({c["cif"] for c in self.call(
            "GET", f"/api/portfolio/companies/{FIRM}/discovered", self.firm_token).json()["companies"]}
            & set(self.client_cifs)) == len(self.client_cifs))

    def workload(self) -> None:
        """Under faults and chaos: invitations claimed and accepted (each starts a client's backlog sync),
        a webhook endpoint, submissions (each sent twice with its key), transport polls."""
        self.webhooks = WebhookReceiver()
        types = self.call("GET", "/api/webhooks/event-types", self.firm_token).json()
        invoice_type = next(t["type"] for t in types if t["topic"].endswith("efactura.invoice-downloaded"))
        self.endpoint = self.call("POST", "/api/webhooks/endpoints", self.firm_token, json={
            "tenant_cif": FIRM, "url": self.webhooks.url, "event_types": [invoice_type]}, ok=(201,)).json()
        self.submit_all(self.plan.submissions // 2)
        items = [{"client_cif": c, "name": f"Reprezentant {c}", "email": f"client-{c}-{self.run_id}@haos.ro",
                  "phone": f"07{22000000 + i:08d}"} for i, c in enumerate(self.client_cifs)]
        sent = self.call("POST", "/api/invitations", self.firm_token, json={"firm_cif": FIRM, "invitations": items},
                         ok=(201, 207)).json()
        log(f"invitations: {sent.get('created')} created, {sent.get('failed')} failed")
        for it in items:
            self.clients.append(self.accept_invitation(it))
        self.call("PATCH", f"/api/webhooks/endpoints/{self.endpoint['id']}", self.firm_token,
                  json={"cifs": [FIRM, *self.client_cifs]}, ok=(200,))
        self.call("POST", f"/api/etransport/companies/{CARRIER}/poll", self.carrier_token, ok=(200, 202, 429))
        self.submit_all(self.plan.submissions - self.plan.submissions // 2)
        log("workload sent")

    def accept_invitation(self, item: dict[str, str]) -> dict[str, Any]:
        email = item["email"]

        def link() -> str | None:
            for m in self.mails(email):
                found = re.search(r"invitation=([\w\-]+)", m.get("text", "") + m.get("html", ""))
                if found:
                    return found.group(1)
            return None
        link_token = self.wait_for(f"the invitation e-mail to {email}", link)
        token = self.user(email, item["name"])
        inv = self.call("POST", "/api/invitations/claim", token, json={"token": link_token}, ok=(200, 409)).json()
        if "id" not in inv:  # a retried claim whose first answer was lost: it is ours already
            inv = self.call("GET", "/api/invitations/received", token).json()[0]
        self.call("POST", f"/api/invitations/{inv['id']}/accept", token, ok=(200, 409))
        return {"cif": item["client_cif"], "email": email, "token": token, "invitation": inv["id"]}

    def submit_all(self, n: int) -> None:
        from datetime import date
        from decimal import Decimal

        from anaf_emulator.ubl import InvoiceSpec, Line, Party, render
        self.submissions: dict[str, str] = getattr(self, "submissions", {})
        for _ in range(n):
            key = f"haos-{uuid.uuid4().hex[:12]}"
            number = f"HAOS-{len(self.submissions) + 1:04d}"
            buyer = self.client_cifs[len(self.submissions) % len(self.client_cifs)]
            xml = render(InvoiceSpec(number=number, issue_date=date.today(),
                                     seller=Party(FIRM, "CONTABIL EXPERT SRL", county="CJ"),
                                     buyer=Party(buyer, "Client SRL"),
                                     lines=[Line("Servicii contabile", Decimal("1"), "H87", Decimal("500.00"), "S",
                                                 Decimal("19"))]))
            ids = set()
            for _ in range(2):  # the integrator retries: the same key must give the same submission
                r = self.call("POST", f"/api/efactura/companies/{FIRM}/submissions", self.firm_token, content=xml,
                              headers={"Content-Type": "application/xml", "Idempotency-Key": key}, ok=(200, 202))
                ids.add(r.json()["id"])
            assert len(ids) == 1, f"one key, two submissions: {ids}"
            self.submissions[key] = ids.pop()

    # -- chaos -------------------------------------------------------------------------------------------
    def chaos(self) -> None:
        """Each service process killed with SIGKILL once and restarted; Kafka, MinIO and PostgreSQL restarted."""
        order = [(s, i) for i in (0, 1) for s in SERVICES]
        infra_at = {len(order) // 4: "kafka", len(order) // 2: "minio", 3 * len(order) // 4: "postgres"}
        waiters: list[threading.Thread] = []
        try:
            for n, (s, i) in enumerate(order):
                if n in infra_at:
                    if infra_at[n] == "postgres":  # every process must be up to show its readiness
                        for w in waiters:
                            w.join()
                    getattr(self, f"restart_{infra_at[n]}")()
                    time.sleep(self.plan.gap)
                name = f"{s}-{i + 1}"
                proc = self.procs.pop(name)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                self.figures.kills.append(name)
                self.spawn_instance(s, i)
                waiters.append(threading.Thread(target=self._back_up, args=(s, i, time.monotonic())))
                waiters[-1].start()
                time.sleep(self.plan.gap)
            for w in waiters:
                w.join()
        except Exception as exc:  # noqa: BLE001 - reported with the figures and failed at the end
            self.figures.chaos_errors.append(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        self.figures.chaos_done = time.monotonic()

    def _back_up(self, s: str, i: int, t0: float) -> None:
        try:
            self.wait_instance(s, i, "/health/ready", 240)
            self.figures.restarts.append((f"{s}-{i + 1} (kill -9)", time.monotonic() - t0))
            log(f"{s}-{i + 1} killed -9, ready again after {time.monotonic() - t0:.1f}s")
        except Exception as exc:  # noqa: BLE001
            self.figures.chaos_errors.append(f"{s}-{i + 1} did not come back: {exc}")

    def restart_kafka(self) -> None:
        t0 = time.monotonic()
        self.infra.stop_kafka()
        time.sleep(self.plan.pg_down)
        self.infra.start_kafka()
        self.figures.restarts.append(("kafka (stop, start)", time.monotonic() - t0))
        log(f"Kafka restarted in {time.monotonic() - t0:.1f}s")

    def restart_minio(self) -> None:
        t0 = time.monotonic()
        self.infra.stop_minio()
        time.sleep(self.plan.pg_down / 2)
        self.infra.start_minio()
        self.figures.restarts.append(("minio (stop, start)", time.monotonic() - t0))
        log(f"MinIO restarted in {time.monotonic() - t0:.1f}s")

    def readiness(self, probe: str = "ready") -> dict[str, int]:
        out = {}
        for s in SERVICES:
            for i in (0, 1):
                try:
                    out[f"{s}-{i + 1}"] = httpx.get(f"{self.instance_url(s, i)}/health/{probe}", timeout=8).status_code
                except httpx.HTTPError:
                    out[f"{s}-{i + 1}"] = 0
        return out

    def restart_postgres(self) -> None:
        """Stopped hard; every process must report not ready while it is gone and ready again by itself."""
        t0 = time.monotonic()
        self.infra.stop_postgres("immediate")
        not_ready: dict[str, int] = {}
        deadline = time.monotonic() + max(self.plan.pg_down, 20)
        while time.monotonic() < deadline:
            not_ready = self.readiness()
            if all(code == 503 for code in not_ready.values()):
                break
            time.sleep(0.5)
        self.figures.readiness["while_database_down"] = not_ready
        # liveness is the process itself: a database outage must not make an orchestrator restart every pod
        self.figures.readiness["liveness_while_database_down"] = self.readiness("live")
        time.sleep(max(0.0, self.plan.pg_down - (time.monotonic() - t0)))
        self.infra.start_postgres()
        t1 = time.monotonic()
        back: dict[str, int] = {}
        while time.monotonic() - t1 < 120:
            back = self.readiness()
            if all(code == 200 for code in back.values()):
                break
            time.sleep(0.5)
        self.figures.readiness["after_restart"] = back
        self.figures.readiness["seconds_to_ready"] = round(time.monotonic() - t1, 1)
        self.figures.restarts.append(("postgres (immediate stop, start)", time.monotonic() - t0))
        log(f"PostgreSQL restarted; ready again after {time.monotonic() - t1:.1f}s: {back}")


def main_run(plan: Plan, keep: bool = False) -> dict[str, Any]:
    """Runs the whole thing; returns the figures and the findings (an empty `failures` means it held)."""
    from chaos_checks import converge, verify
    logdir = Path(os.environ.get("SPVHUB_CHAOS_LOGS", ROOT / ".stack" / "logs" / "chaos"))
    infra = ChaosInfra()
    sysm = None
    try:
        t0 = time.monotonic()
        infra.start()
        log(f"own PostgreSQL :{infra.pg_port}, Kafka :{infra.kafka_port}, MinIO :{infra.minio_port} "
            f"in {infra.root} ({time.monotonic() - t0:.0f}s)")
        sysm = ChaosSystem(infra, plan, logdir)
        sysm.start()
        log(f"14 service processes ready ({time.monotonic() - t0:.0f}s); logs {logdir}/{sysm.run_id}-*")
        sysm.setup_firm_and_carrier()
        log("firm and carrier authorized, clients discovered; emulator faults on")
        sysm.admin("POST", "faults", json=FAULTS)
        sysm.admin("DELETE", "counters")
        sysm.figures.started = time.monotonic()
        chaos = threading.Thread(target=sysm.chaos, daemon=True)
        chaos.start()
        workload_error = None
        try:
            sysm.workload()
        except Exception as exc:  # noqa: BLE001
            workload_error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        chaos.join()
        log("chaos done; waiting for the system to converge")
        result = converge(sysm)
        sysm.figures.converged = time.monotonic()
        counters = sysm.admin("GET", "counters").json()
        injected = sysm.admin("GET", "faults").json()["injected"]
        sysm.admin("DELETE", "faults")
        report = verify(sysm, counters, injected)
        if workload_error:
            report["failures"].append(f"workload: {workload_error}")
        report["failures"] += [f"chaos: {e}" for e in sysm.figures.chaos_errors]
        report["failures"] += result["failures"]
        report["figures"]["converged"] = result["converged"]
        return report
    finally:
        if sysm is not None:
            sysm.stop()
        infra.stop(keep_data=keep)


def print_report(report: dict[str, Any]) -> None:
    print("\n========== chaos run ==========")
    for k, v in report["figures"].items():
        print(f"{k:>34}: {v}")
    if report["failures"]:
        print("\nFAILURES:")
        for f in report["failures"]:
            print(f" - {f}")
    else:
        print("\nno loss, no duplicate: every check held")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--full", action="store_true", help="20 companies, about 6,000 invoices (default: short form)")
    ap.add_argument("--keep", action="store_true", help="keep the chaos stack's data directory")
    args = ap.parse_args(argv)
    report = main_run(FULL if args.full else SHORT, keep=args.keep)
    print_report(report)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    socket.setdefaulttimeout(60)
    sys.exit(main())
