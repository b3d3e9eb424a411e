"""Fault injection (latency, 5xx, timeouts, WAF HTML-200, 302 /my.policy, 429 bursts) and call counting."""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from typing import Any

FAMILIES = ("*", "oauth", "efactura", "etransport", "public", "spv", "hello")
# What the middleware can inject, as counted per family: "latency" is a call delayed (its total in "latency_ms"),
# the others are answers the emulator made up instead of routing the call
FAULT_KINDS = ("5xx", "timeout", "latency", "waf", "my_policy", "429")

WAF_PAGE = (
    "<html><head><title>Request Rejected</title></head><body>The requested URL was rejected. "
    "Please consult with your administrator.<br><br>Your support ID is: {sid}<br><br>"
    "<a href='javascript:history.back();'>[Go Back]</a></body></html>"
)


@dataclass
class FaultConfig:
    latency_ms: tuple[int, int] = (0, 0)
    error_rate: float = 0.0
    error_status: int = 503
    timeout_rate: float = 0.0
    timeout_seconds: float = 65.0
    waf_rate: float = 0.0
    my_policy_rate: float = 0.0
    burst_429: int = 0

    def active(self) -> bool:
        return (
            self.latency_ms[1] > 0
            or self.error_rate > 0
            or self.timeout_rate > 0
            or self.waf_rate > 0
            or self.my_policy_rate > 0
            or self.burst_429 > 0
        )


class Faults:
    """Fault settings per path family; `*` applies to every family without its own entry.

    Every injected fault is counted per real family (never `*`), so a run under random faults can state exactly
    what it went through instead of estimating it from the rates."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.by_family: dict[str, FaultConfig] = {}
        self.lock = threading.Lock()
        self.injected: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def set(self, family: str, values: dict[str, Any]) -> None:
        """Changes a family's switches and zeroes the counters: they then describe the new settings only."""
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {list(FAMILIES)}")
        with self.lock:
            cfg = self.by_family.get(family) or FaultConfig()
            for key, value in values.items():
                if key not in FaultConfig.__dataclass_fields__:
                    raise ValueError(f"unknown fault field {key!r}")
                if key == "latency_ms":
                    lo, hi = (value, value) if isinstance(value, (int, float)) else value
                    value = (int(lo), int(hi))
                elif key in ("error_status", "burst_429"):
                    value = int(value)
                else:
                    value = float(value)
                setattr(cfg, key, value)
            self.by_family[family] = cfg
            self.injected.clear()

    def clear(self) -> None:
        """Switches every fault off; the counters stay readable until the next `set` or `reset_counts`."""
        with self.lock:
            self.by_family.clear()

    def reset_counts(self) -> None:
        with self.lock:
            self.injected.clear()

    def count(self, family: str, kind: str, n: int = 1) -> None:
        """Caller holds `lock`."""
        self.injected[family][kind] += n

    def counts(self) -> dict[str, Any]:
        """`{"by_family": {family: {kind: n}}, "total": {kind: n}}`, every kind present (zeros included)."""
        with self.lock:
            by_family = {f: {k: c.get(k, 0) for k in (*FAULT_KINDS, "latency_ms")} for f, c in self.injected.items()}
        total = {k: sum(c[k] for c in by_family.values()) for k in (*FAULT_KINDS, "latency_ms")}
        return {"by_family": by_family, "total": total}

    def switches(self) -> dict[str, Any]:
        with self.lock:
            return {k: {**asdict(v), "latency_ms": list(v.latency_ms)} for k, v in self.by_family.items()}

    def as_dict(self) -> dict[str, Any]:
        return {"switches": self.switches(), "injected": self.counts()}

    def config_for(self, family: str) -> FaultConfig | None:
        if not self.by_family:
            return None
        return self.by_family.get(family) or self.by_family.get("*")


_NUM = re.compile(r"/\d+(?=/|$)")


def family_of(path: str) -> str | None:
    if path.startswith("/__"):
        return None
    if path.startswith("/anaf-oauth2/"):
        return "oauth"
    if "/FCTEL/rest/" in path or path.startswith("/api/validate/"):
        return "efactura"
    if "/ETRANSPORT/" in path:
        return "etransport"
    if path.startswith(("/SPVWS2/", "/my.policy")):
        return "spv"
    if path.startswith("/TestOauth/"):
        return "hello"
    if "PlatitorTvaRest" in path or "registruroefactura" in path:
        return "public"
    return None


def endpoint_key(method: str, path: str) -> str:
    """`GET /FCTEL/rest/listaMesajeFactura`: env segment dropped, numeric segments as {n}."""
    if path.startswith(("/prod/", "/test/")):
        path = path[5:]
    return f"{method} {_NUM.sub('/{n}', path)}"


class FaultMiddleware:
    """Pure ASGI middleware: counts every call and applies the configured faults before routing."""

    def __init__(self, app: Any, state_getter: Any, fast_routes: dict[tuple[str, str], Any] | None = None) -> None:
        self.app = app
        self.state_getter = state_getter
        # hot read paths dispatched straight to their handlers (no router walk) to keep list/download cheap
        self.fast_routes = fast_routes or {}

    async def _forward(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        handler = self.fast_routes.get((scope["method"], scope["path"]))
        if handler is None:
            await self.app(scope, receive, send)
            return
        from starlette.requests import Request

        request = Request(scope, receive)
        response = await handler(scope["path"][1:5], request)
        await response(scope, receive, send)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        family = family_of(path)
        if family is None:
            await self.app(scope, receive, send)
            return
        state = self.state_getter()
        state.counters.endpoints[endpoint_key(scope["method"], path)] += 1
        faults: Faults = state.faults
        cfg = faults.config_for(family)
        if cfg is None or not cfg.active():
            await self._forward(scope, receive, send)
            return
        with faults.lock:
            rng = faults.rng
            latency = rng.uniform(*cfg.latency_ms) / 1000 if cfg.latency_ms[1] > 0 else 0.0
            burst = cfg.burst_429 > 0
            if burst:
                cfg.burst_429 -= 1
            roll = rng.random()
            support_id = str(rng.randrange(10**18, 10**19))
            # the outcome is decided here, so it is counted here, under the lock: a client that gives up during
            # the delay or the timeout's sleep was still served the fault
            outcome = _outcome(cfg, burst, roll)
            if latency:
                faults.count(family, "latency")
                faults.count(family, "latency_ms", round(latency * 1000))
            if outcome is not None:
                faults.count(family, outcome)
        if latency:
            await asyncio.sleep(latency)
        if outcome == "429":
            state.counters.rejected["429"] += 1
            await _send(send, 429, b'{"error":"Too Many Requests"}', "application/json", [(b"retry-after", b"60")])
        elif outcome == "timeout":
            await asyncio.sleep(cfg.timeout_seconds)
            await _send(send, 504, b"<html><body>Gateway Timeout</body></html>", "text/html")
        elif outcome == "5xx":
            body = json.dumps({"timestamp": "", "status": cfg.error_status, "error": "Service Unavailable"})
            await _send(send, cfg.error_status, body.encode(), "application/json")
        elif outcome == "waf":
            await _send(send, 200, WAF_PAGE.format(sid=support_id).encode(), "text/html; charset=utf-8")
        elif outcome == "my_policy":
            await _send(send, 302, b"", "text/html", [(b"location", b"/my.policy")])
        else:
            await self._forward(scope, receive, send)


def _outcome(cfg: FaultConfig, burst: bool, roll: float) -> str | None:
    """Which made-up answer a call gets (None: the real one): a 429 burst first, then one roll against the rates
    stacked in a fixed order."""
    if burst:
        return "429"
    threshold = 0.0
    for kind, rate in (("timeout", cfg.timeout_rate), ("5xx", cfg.error_rate), ("waf", cfg.waf_rate),
                       ("my_policy", cfg.my_policy_rate)):
        threshold += rate
        if roll < threshold:
            return kind
    return None


async def _send(send: Any, status: int, body: bytes, content_type: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    headers += extra or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
