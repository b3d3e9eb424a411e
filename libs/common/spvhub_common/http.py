"""FastAPI app factory shared by services: error bodies, request ids, Prometheus metrics, health probes,
request-body caps and no-store on API answers."""
from __future__ import annotations

import asyncio
import copy
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spvhub_common.body_limits import body_limits_of  # the gateway enforces the same table
from spvhub_common.errors import ErrorResponse, body_too_large_body, error_body, install_error_handlers
from spvhub_common.inputs import InputHygieneMiddleware, data_error_response, is_data_error
from spvhub_common.settings import ServiceSettings

REQUESTS = Counter("http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency", ["service", "method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

ReadinessCheck = Callable[[], Awaitable[None]]
REQUEST_ID = re.compile(r"[\w.:-]{1,128}")
READINESS_TIMEOUT = 3.0  # a dependency that does not answer (a blackholed host) is down, not a hung probe
API_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}


class BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` when a body without (or with a lying) Content-Length passes the limit. A Starlette
    HTTPException, so FastAPI's body parsing lets it through to the error handler (413 body_too_large)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"body larger than {limit} bytes")
        self.limit = limit


class BodyLimitMiddleware:
    """Refuses request bodies over the limit of their endpoint with 413 `body_too_large`: from Content-Length before
    anything is read, otherwise as soon as the streamed body passes the limit (the rest is never buffered).

    `limits`: (method, path regex, bytes) for the endpoints that take files; every other request gets `default`."""

    def __init__(self, app: ASGIApp, *, default: int, limits: list[tuple[str, str, int]] | None = None) -> None:
        self.app = app
        self.default = default
        self.limits = [(m.upper(), re.compile(rx), n) for m, rx, n in (limits or [])]

    def limit_for(self, method: str, path: str) -> int:
        for m, rx, n in self.limits:
            if m == method and rx.match(path):
                return n
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None:
            try:
                too_large = int(declared) > limit
            except ValueError:
                too_large = False  # the server refuses a malformed Content-Length before we run
            if too_large:
                await _send_too_large(send, limit)
                return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await _send_too_large(send, limit)


async def _send_too_large(send: Send, limit: int) -> None:
    response = JSONResponse(body_too_large_body(limit), status_code=413, headers={"Connection": "close"})
    await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def _unexpected(request: Request, exc: Exception, rid: str) -> Response:
    """The answer to an exception no handler took: a value the database refused as data is the client's (422);
    anything else is logged with its traceback and the request id, which the client gets too, to quote."""
    log = structlog.get_logger(__name__)  # not cached at import: the logging set up at start applies
    if is_data_error(exc):
        log.info("value refused by the database", method=request.method, path=request.url.path,
                 error=type(exc).__name__)
        return data_error_response()
    log.error("unexpected error", method=request.method, path=request.url.path, request_id=rid,
              error=type(exc).__name__, exc_info=exc)
    return JSONResponse(error_body("internal_error", "A apărut o eroare neprevăzută; citați identificatorul cererii "
                                                     "dacă o semnalați. / An unexpected error occurred; quote the "
                                                     "request id if you report it.", {"request_id": rid}),
                        status_code=500)


# The refusals every operation may answer, all with the platform's error body. Which apply depends on the operation
# (see _error_statuses); anything else (400, 410, 413, 429, 503, 500) is the `default` answer, same body.
ERROR_DESCRIPTIONS = {
    "401": "Not signed in, or the token or key is not valid (codes missing_token, invalid_token, token_expired, "
           "invalid_api_key, ...).",
    "403": "Signed in but not allowed (codes forbidden, no_access_to_company, api_key_not_allowed, ...).",
    "404": "What the path names does not exist or is not visible to the caller (code not_found or a specific one).",
    "409": "The request conflicts with the current state (code conflict or a specific one).",
    "422": "The request is not valid (code validation_error with details.fields, or a more specific code).",
    "default": "Any other refusal or failure, with the same error body (e.g. 400, 410, 413, 429, 503).",
}
_ERROR_REF = "#/components/schemas/ErrorResponse"
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def _error_statuses(method: str, op: dict[str, Any]) -> list[str]:
    headers = {str(p.get("name", "")).lower() for p in op.get("parameters", []) if p.get("in") == "header"}
    statuses = ["422"]
    if headers & {"authorization", "x-service-token"}:  # CurrentUser / ServiceCaller routes
        statuses += ["401", "403"]
    if any(p.get("in") == "path" for p in op.get("parameters", [])):
        statuses.append("404")
    if method != "get":
        statuses.append("409")
    return sorted(statuses) + ["default"]


def declare_error_responses(doc: dict[str, Any]) -> dict[str, Any]:
    """Declares the platform's error body on every operation of an OpenAPI document, in place: FastAPI's
    `HTTPValidationError` (`{"detail": [...]}`), which no service answers, is replaced by `ErrorResponse`;
    the common error statuses are added; a status a route declared itself keeps its description and gains the
    body. Without this a generated client has no model for any refusal."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in error_schema.pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    schemas.setdefault("ErrorResponse", error_schema)
    content = {"application/json": {"schema": {"$ref": _ERROR_REF}}}
    for ops in doc.get("paths", {}).values():
        for method, op in ops.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses = op["responses"]
            for status in _error_statuses(method, op):
                responses.setdefault(status, {"description": ERROR_DESCRIPTIONS[status]})
            for status, answer in responses.items():
                if status == "default" or status[0] in "45":
                    declared = answer.get("content", {}).get("application/json", {}).get("schema", {})
                    if not answer.get("content") or declared.get("$ref", "").endswith("/HTTPValidationError"):
                        answer["content"] = copy.deepcopy(content)
                        if answer.get("description") == "Validation Error":
                            answer["description"] = ERROR_DESCRIPTIONS["422"]
            op["responses"] = dict(sorted(responses.items(), key=lambda kv: (kv[0] == "default", kv[0])))
    text = json.dumps(doc.get("paths", {}))
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        if f'/{name}"' not in text and name in schemas:
            referenced_elsewhere = any(f'/{name}"' in json.dumps(s) for n, s in schemas.items() if n != name)
            if not referenced_elsewhere:
                del schemas[name]
    return doc


def create_app(settings: ServiceSettings, *, title: str, description: str, routers: list[APIRouter],
               lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]] | None = None,
               version: str = "1.0.0") -> FastAPI:
    service = settings.service_name
    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan,
                  root_path="", openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    app.state.settings = settings
    app.state.readiness = []
    install_error_handlers(app)

    # inside the body cap, so a JSON body it reads whole is already bounded
    app.add_middleware(InputHygieneMiddleware)
    app.add_middleware(BodyLimitMiddleware, default=settings.max_body_bytes,
                       limits=[(b.method, b.regex, b.max_bytes) for b in body_limits_of(service)])

    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        rid = request.headers.get("x-request-id", "")
        if not REQUEST_ID.fullmatch(rid):  # echoed in headers, bodies and logs: only a plain token is taken
            rid = uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=rid)
        t0 = time.perf_counter()
        status = 500
        try:
            try:
                response = await call_next(request)
            except Exception as exc:
                response = _unexpected(request, exc, rid)
            status = response.status_code
            response.headers["X-Request-ID"] = rid
            if request.url.path.startswith(("/api/", "/internal/")):
                # API answers carry personal data and tokens (sessions, ANAF access tokens): no cache keeps them,
                # unless the endpoint chose otherwise (the public JWKS). The security headers are the gateway's
                # too; set here as well for a route that reaches the service without it (an Ingress).
                pdf = response.headers.get("content-type", "").startswith("application/pdf")
                for name, value in API_HEADERS.items():
                    # a browser's PDF viewer may not render an inline PDF under default-src 'none'
                    if name.lower() not in response.headers and not (pdf and name == "Content-Security-Policy"):
                        response.headers[name] = value
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
                await asyncio.wait_for(check(), READINESS_TIMEOUT)
            except TimeoutError:
                failures[getattr(check, "__name__", "check")] = f"no answer within {READINESS_TIMEOUT:g} s"
            except Exception as exc:  # report which dependency is down, not the stack
                failures[getattr(check, "__name__", "check")] = f"{type(exc).__name__}: {str(exc)[:200]}"
        body = {"status": "ok" if not failures else "unavailable", "service": service, "failures": failures}
        return JSONResponse(body, status_code=200 if not failures else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for r in routers:
        app.include_router(r)

    # Once, on the first call (FastAPI caches the document in app.openapi_schema the same way).
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = declare_error_responses(build_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def app_deps(request: Request) -> Any:
    """FastAPI dependency: the service's `Deps`, which `bootstrap.build` stores at `app.state.deps`. A service
    declares `ServiceDeps = Annotated[Deps, Depends(app_deps)]` once and its routes take `deps: ServiceDeps`."""
    return request.app.state.deps
