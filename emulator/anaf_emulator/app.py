"""Application factory: one FastAPI app serving every ANAF host's paths under one base URL."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from . import admin as admin_api
from . import efactura, etransport, oauth, public, spv
from .faults import FaultMiddleware
from .responses import json_response, spring_404
from .state import EmulatorState


def create_app(scenario: Any = "minimal.json", *, admin: bool = True, clock_start: str | None = None,
               **switches: Any) -> FastAPI:
    """Build the emulator for `scenario` (path, shipped file name, or dict); `switches` override defaults.

    `clock_start` (ISO instant or "now") overrides the scenario's clock start before data is generated.
    """
    enabled = admin
    state = EmulatorState(scenario, switches, clock_start=clock_start)
    app = FastAPI(title="ANAF emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.emulator = state
    for module in (oauth, efactura, etransport, public, spv):
        app.include_router(module.router)
    app.include_router(admin_api.keys_router)
    if enabled:
        app.include_router(admin_api.router)

    @app.exception_handler(StarletteHTTPException)
    async def not_found(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return spring_404(request.url.path, state.clock.now())
        if exc.status_code == 405:
            body = {"timestamp": "", "status": 405, "error": "Method Not Allowed", "path": request.url.path}
            return json_response(body, status=405)
        return json_response({"status": exc.status_code, "error": str(exc.detail)}, status=exc.status_code)

    fast = {}
    for env in ("prod", "test"):
        for name, handler in (("listaMesajeFactura", efactura.lista_mesaje),
                              ("listaMesajePaginatieFactura", efactura.lista_paginata),
                              ("descarcare", efactura.descarcare), ("stareMesaj", efactura.stare_mesaj)):
            fast[("GET", f"/{env}/FCTEL/rest/{name}")] = handler
    app.add_middleware(FaultMiddleware, state_getter=lambda: app.state.emulator, fast_routes=fast)
    return app
