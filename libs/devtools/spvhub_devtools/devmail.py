"""Development SMTP capture: a real SMTP server (aiosmtpd) that stores every message it accepts, plus a tiny
HTTP API to read them back and to inject faults. Dev and tests only; never part of a deployment.

    python -m spvhub_devtools.devmail --smtp-port 11025 --http-port 11080 --dir .stack/mail

HTTP API (JSON):
  GET    /messages               every captured message, oldest first; `?to=<addr>` filters by recipient
  GET    /messages/{id}          one message (404 when unknown)
  GET    /messages/{id}/raw      the message as received (message/rfc822)
  DELETE /messages               forget every message (and delete the stored files)
  GET    /fault                  the current fault switches
  POST   /fault                  {"refuse": true|false, "mode": "connect"|"reply", "fail_next": n}
        refuse+connect: the SMTP port is closed (connections refused);
        refuse+reply:   the server answers every delivery with `421 4.3.2 Service not available`;
        fail_next: the next n deliveries are answered `451 4.3.0 Temporary failure` (then normal again).
A message is: {"id", "from", "to", "subject", "date", "message_id", "text", "html", "headers", "received_at"}.
"""
from __future__ import annotations

import argparse
import email
import email.policy
import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse


def _body(msg: EmailMessage, subtype: str) -> str:
    part = msg.get_body(preferencelist=(subtype,))
    if part is None:
        return ""
    try:
        return str(part.get_content())
    except (LookupError, KeyError):  # unknown charset: best effort
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)


def describe(mid: str, raw: bytes, mail_from: str, rcpt_tos: list[str], received_at: str) -> dict[str, Any]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return {"id": mid, "from": mail_from, "to": list(rcpt_tos), "subject": str(msg.get("Subject", "")),
            "date": str(msg.get("Date", "")), "message_id": str(msg.get("Message-ID", "")),
            "header_from": str(msg.get("From", "")), "header_to": str(msg.get("To", "")),
            "text": _body(msg, "plain"), "html": _body(msg, "html"),
            "headers": {k: str(v) for k, v in msg.items()}, "received_at": received_at}


@dataclass
class Faults:
    refuse: bool = False
    mode: str = "connect"  # connect | reply
    fail_next: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"refuse": self.refuse, "mode": self.mode, "fail_next": self.fail_next}


@dataclass
class MailStore:
    """Messages kept in memory and, when `directory` is set, as `<id>.eml` + `<id>.json` files."""

    directory: Path | None = None
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    raw: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        for meta in sorted(self.directory.glob("*.json")):
            try:
                info = json.loads(meta.read_text())
                raw = meta.with_suffix(".eml").read_bytes()
            except (OSError, ValueError):
                continue
            self.messages[info["id"]] = describe(info["id"], raw, info["from"], info["to"], info["received_at"])
            self.raw[info["id"]] = raw

    def add(self, raw: bytes, mail_from: str, rcpt_tos: list[str]) -> dict[str, Any]:
        mid = f"{time.time_ns():020d}-{os.urandom(3).hex()}"
        received_at = datetime.now(UTC).isoformat()
        item = describe(mid, raw, mail_from, rcpt_tos, received_at)
        with self.lock:
            if self.directory is not None:
                (self.directory / f"{mid}.eml").write_bytes(raw)
                (self.directory / f"{mid}.json").write_text(json.dumps(
                    {"id": mid, "from": mail_from, "to": list(rcpt_tos), "received_at": received_at}))
            self.messages[mid] = item
            self.raw[mid] = raw
        return item

    def list(self, to: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            items = [self.messages[k] for k in sorted(self.messages)]
        if to:
            items = [m for m in items if any(t.lower() == to.lower() for t in m["to"])]
        return items

    def get(self, mid: str) -> dict[str, Any] | None:
        with self.lock:
            return self.messages.get(mid)

    def clear(self) -> None:
        with self.lock:
            if self.directory is not None:
                for p in list(self.directory.glob("*.eml")) + list(self.directory.glob("*.json")):
                    p.unlink(missing_ok=True)
            self.messages.clear()
            self.raw.clear()


class _Handler:
    """aiosmtpd handler: stores each message, or refuses it while a fault is set."""

    def __init__(self, server: DevMail) -> None:
        self.server = server

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        if self.server.faults.refuse and self.server.faults.mode == "reply":
            return "421 4.3.2 Service not available (devmail fault)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        faults = self.server.faults
        if faults.refuse and faults.mode == "reply":
            return "421 4.3.2 Service not available (devmail fault)"
        with self.server.fault_lock:
            if faults.fail_next > 0:
                faults.fail_next -= 1
                return "451 4.3.0 Temporary failure (devmail fault)"
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        self.server.store.add(raw, envelope.mail_from, list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


class DevMail:
    """SMTP capture + HTTP view, each on its own thread; `start()` / `stop()`; usable in-process by tests."""

    def __init__(self, *, smtp_port: int = 0, http_port: int = 0, directory: Path | None = None,
                 host: str = "127.0.0.1") -> None:
        self.host = host
        self.smtp_port = smtp_port or _free_port(host)
        self.http_port = http_port if http_port >= 0 else 0
        self.store = MailStore(directory)
        self.faults = Faults()
        self.fault_lock = threading.Lock()
        self._controller: Any = None
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None

    # ---------------------------------------------------------------- SMTP
    def _start_smtp(self) -> None:
        from aiosmtpd.controller import Controller

        if self._controller is not None:
            return
        c = Controller(_Handler(self), hostname=self.host, port=self.smtp_port, decode_data=False,
                       data_size_limit=25 * 1024 * 1024, ready_timeout=10)
        c.start()
        self._controller = c

    def _stop_smtp(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def set_faults(self, refuse: bool | None = None, mode: str | None = None, fail_next: int | None = None) -> None:
        with self.fault_lock:
            if mode is not None:
                if mode not in ("connect", "reply"):
                    raise ValueError("mode must be 'connect' or 'reply'")
                self.faults.mode = mode
            if refuse is not None:
                self.faults.refuse = refuse
            if fail_next is not None:
                self.faults.fail_next = max(0, int(fail_next))
            closed = self.faults.refuse and self.faults.mode == "connect"
        if closed:
            self._stop_smtp()
        else:
            self._start_smtp()

    # ---------------------------------------------------------------- HTTP
    def _start_http(self) -> None:
        owner = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, body: Any, ctype: str = "application/json") -> None:
                data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                parts = [p for p in url.path.split("/") if p]
                if parts == ["messages"]:
                    to = parse_qs(url.query).get("to", [None])[0]
                    return self._send(200, owner.store.list(to))
                if len(parts) in (2, 3) and parts[0] == "messages":
                    item = owner.store.get(parts[1])
                    if item is None:
                        return self._send(404, {"error": {"code": "not_found", "message": "no such message"}})
                    if len(parts) == 3 and parts[2] == "raw":
                        return self._send(200, owner.store.raw[parts[1]], "message/rfc822")
                    return self._send(200, item)
                if parts == ["fault"]:
                    return self._send(200, owner.faults.as_dict())
                if parts in ([], ["health"]):
                    return self._send(200, {"status": "ok", "smtp_port": owner.smtp_port,
                                            "messages": len(owner.store.messages)})
                return self._send(404, {"error": {"code": "not_found", "message": self.path}})

            def do_DELETE(self) -> None:  # noqa: N802
                if urlparse(self.path).path.rstrip("/") == "/messages":
                    owner.store.clear()
                    return self._send(200, {"deleted": True})
                return self._send(404, {"error": {"code": "not_found", "message": self.path}})

            def do_POST(self) -> None:  # noqa: N802
                if urlparse(self.path).path.rstrip("/") != "/fault":
                    return self._send(404, {"error": {"code": "not_found", "message": self.path}})
                try:
                    n = int(self.headers.get("Content-Length") or 0)
                    body = json.loads(self.rfile.read(n) or b"{}")
                    owner.set_faults(refuse=body.get("refuse"), mode=body.get("mode"),
                                     fail_next=body.get("fail_next"))
                except (ValueError, TypeError, AttributeError) as exc:
                    return self._send(400, {"error": {"code": "bad_request", "message": str(exc)}})
                return self._send(200, owner.faults.as_dict())

        self._http = ThreadingHTTPServer((self.host, self.http_port), H)
        self._http.daemon_threads = True
        self.http_port = self._http.server_address[1]
        self._http_thread = threading.Thread(target=self._http.serve_forever, name="devmail-http", daemon=True)
        self._http_thread.start()

    # ---------------------------------------------------------------- lifetime
    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def start(self) -> DevMail:
        self._start_smtp()
        self._start_http()
        return self

    def stop(self) -> None:
        self._stop_smtp()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def __enter__(self) -> DevMail:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port(host: str = "127.0.0.1") -> int:
    import socket
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m spvhub_devtools.devmail", description=__doc__.splitlines()[0])
    p.add_argument("--smtp-port", type=int, default=11025)
    p.add_argument("--http-port", type=int, default=11080)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--dir", type=Path, default=None, help="where captured messages are stored")
    a = p.parse_args(argv)
    server = DevMail(smtp_port=a.smtp_port, http_port=a.http_port, directory=a.dir, host=a.host).start()
    print(f"devmail: SMTP on {a.host}:{server.smtp_port}, messages at {server.http_url}/messages", flush=True)
    stop = threading.Event()
    try:
        import signal
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
