"""FastAPI app factory shared by services: error bodies, request ids, Prometheus metrics, health probes."""
from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from spvhub_common.errors import install_error_handlers
from spvhub_common.settings import ServiceSettings

REQUESTS = Counter("http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency", ["service", "method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

ReadinessCheck = Callable[[], Awaitable[None]]


def create_app(settings: ServiceSettings, *, title: str, description: str, routers: list[APIRouter],
               lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]] | None = None,
               version: str = "1.0.0") -> FastAPI:
    service = settings.service_name
    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan,
                  root_path="", openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    app.state.settings = settings
    app.state.readiness = []
    install_error_handlers(app)

    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=rid)
        t0 = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers["X-Request-ID"] = rid
            return response
        finally:
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            REQUESTS.labels(service, request.method, path, str(status)).inc()
            LATENCY.labels(service, request.method, path).observe(time.perf_counter() - t0)
            structlog.contextvars.unbind_contextvars("request_id")

    @app.get("/health/live", include_in_schema=False)
    async def live() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/health/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        failures = {}
        for check in app.state.readiness:
            try:
                await check()
            except Exception as exc:  # report which dependency is down, not the stack
                failures[getattr(check, "__name__", "check")] = f"{type(exc).__name__}: {str(exc)[:200]}"
        body = {"status": "ok" if not failures else "unavailable", "service": service, "failures": failures}
        return JSONResponse(body, status_code=200 if not failures else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for r in routers:
        app.include_router(r)
    return app
