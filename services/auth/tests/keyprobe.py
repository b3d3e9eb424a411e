"""A tenant-scoped service as every spvhub service is built (spvhub_common's app, `CurrentUser`, the access read
model with `require_grant` / `accessible_cifs`), answering under efactura's paths, for API-key tests: it resolves
keys through the auth service's real introspection endpoint and reads the real `access_grants` rows."""
from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, FastAPI
from spvhub_auth.adapters.orm import access_grants
from spvhub_common.access import MANAGERS, accessible_cifs, require_grant
from spvhub_common.http import create_app
from spvhub_common.security import ApiKeyIntrospector, CurrentUser
from spvhub_devtools.testing import make_settings


def build_probe(auth_app: Any, sessions: Any, *, auth_client: httpx.AsyncClient | None = None,
                introspect_url: str = "http://auth/internal/api-keys/introspect") -> FastAPI:
    settings = make_settings("efactura")
    router = APIRouter(prefix="/api/efactura")

    @router.get("/invoices")
    async def invoices(user: CurrentUser) -> dict[str, Any]:
        async with sessions() as s:
            return {"cifs": await accessible_cifs(s, access_grants, user.user_id), "subject": user.subject}

    @router.get("/companies/{cif}/invoices")
    async def company_invoices(cif: str, user: CurrentUser) -> dict[str, Any]:
        async with sessions() as s:
            g = await require_grant(s, access_grants, user.user_id, cif)
        return {"cif": cif, "role": g.role, "subject": user.subject}

    @router.post("/companies/{cif}/sync", status_code=202)
    async def sync(cif: str, user: CurrentUser) -> dict[str, Any]:
        async with sessions() as s:
            await require_grant(s, access_grants, user.user_id, cif)
        return {"cif": cif, "sync_requested": True}

    @router.post("/companies/{cif}/submissions", status_code=202)
    async def submit(cif: str, user: CurrentUser) -> dict[str, Any]:
        async with sessions() as s:
            await require_grant(s, access_grants, user.user_id, cif, file=True)
        return {"cif": cif, "accepted": True}

    @router.put("/companies/{cif}/sync-settings")
    async def sync_settings(cif: str, user: CurrentUser) -> dict[str, Any]:
        async with sessions() as s:
            await require_grant(s, access_grants, user.user_id, cif, roles=MANAGERS)
        return {"cif": cif}

    app = create_app(settings, title="probe", description="", routers=[router])
    app.state.jwks = auth_app.state.jwks
    client = auth_client or httpx.AsyncClient(transport=httpx.ASGITransport(app=auth_app), base_url="http://auth")
    app.state.api_keys = ApiKeyIntrospector(introspect_url, "dev-service-token", "efactura", client=client)
    return app
