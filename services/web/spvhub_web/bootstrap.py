"""Composition root of the web: the gateway client, templates, static files, the session and security-header
middleware and the error pages. The only place that builds clients."""
from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from spvhub_common.clientaddr import client_address

from spvhub_web import gateway as gateway_mod
from spvhub_web import pages
from spvhub_web.gateway import ApiError, Gateway, NotSignedIn
from spvhub_web.i18n import Translator
from spvhub_web.session import COOKIE, SessionCodec
from spvhub_web.settings import Settings, get_settings

HERE = Path(__file__).parent
# No inline script or style anywhere: every script and stylesheet is a static file of this service.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self' {anaf}")


def csp(settings: Settings) -> str:
    """Forms post to the web itself; the authorization and delegation forms answer with a redirect to ANAF's
    authorize page, which Chrome also checks against form-action: its origin, and no other."""
    return CSP.format(anaf=settings.anaf_authorize_origin)


def build_app(settings: Settings | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    settings = settings or get_settings()
    gateway = Gateway(settings.gateway_url, settings.gateway_timeout, transport=transport)
    codec = SessionCodec(settings.session_key.get_secret_value(), settings.session_max_age_seconds)
    policy = csp(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # type: ignore[no-untyped-def]
        yield
        await gateway.aclose()

    app = FastAPI(title="spvhub web", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.settings = settings
    app.state.gateway = gateway
    app.state.templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def _session_and_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request.state.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        # the person's address (X-Forwarded-For only from a trusted proxy, else the peer) goes with every call
        gateway_mod.client_address.set(client_address(request, settings.trusted_proxies))
        session = codec.load(request.cookies.get(COOKIE))
        if not session.get("locale"):  # Romanian unless the person picks English (not the browser's guess)
            session.data["locale"] = settings.default_locale
        request.state.session = session
        response = await call_next(request)
        if session.dirty:
            response.set_cookie(COOKIE, codec.dump(session), httponly=True, samesite="lax",
                                secure=settings.cookie_secure, path="/")
        h = response.headers
        h.setdefault("Content-Security-Policy", policy)
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        # links carry invitation and delegation tokens: never hand them to another site as a referrer
        h.setdefault("Referrer-Policy", "no-referrer")
        if not request.url.path.startswith("/static/"):
            h.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, _exc: NotSignedIn) -> Response:
        nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(nxt)}", status_code=303)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        status = exc.status if 400 <= exc.status < 600 else 502
        return pages.render(request, "error.html", {"error": exc}, status=status)

    @app.exception_handler(pages.CsrfRefused)
    async def _csrf(request: Request, _exc: pages.CsrfRefused) -> Response:
        t = Translator(request.state.session.get("locale", "ro"))
        return pages.render(request, "error.html", {"error": ApiError(403, "csrf_failed", t("err.csrf_failed"))},
                            status=403)

    @app.exception_handler(404)
    async def _not_found(request: Request, _exc: Any) -> Response:
        t = Translator(request.state.session.get("locale", "ro"))
        err = ApiError(404, "page_not_found", t("err.page_not_found"))
        return pages.render(request, "error.html", {"error": err}, status=404)

    @app.get("/health/live", include_in_schema=False)
    async def live() -> dict[str, str]:
        return {"status": "ok", "service": "web"}

    @app.get("/health/ready", include_in_schema=False)
    async def ready() -> Response:
        try:
            r = await gateway.http.get("/health/live", timeout=3)
            ok = r.status_code == 200
        except httpx.HTTPError:
            ok = False
        body = '{"status":"%s","service":"web"}' % ("ok" if ok else "unavailable")
        return Response(body, status_code=200 if ok else 503, media_type="application/json")

    app.include_router(pages.router)
    return app
