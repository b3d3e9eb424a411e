"""Which routes an API key may call and with which permission (spvhub_common.security), decided before any
handler runs; and a person's request never inherits a key's restrictions from the same context."""
from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from spvhub_common.access import KeyScope, key_scope
from spvhub_common.errors import install_error_handlers
from spvhub_common.security import CurrentUser, Principal, key_permission_for


@pytest.mark.parametrize(("method", "path", "perm"), [
    ("GET", "/api/efactura/invoices", "read"),
    ("HEAD", "/api/efactura/invoices/7/pdf", "read"),
    ("GET", "/api/etransport/companies/1000017/transports", "read"),
    ("POST", "/api/efactura/validation", "read"),
    ("POST", "/api/efactura/companies/1000017/sync", "sync"),
    ("POST", "/api/etransport/companies/1000017/poll", "sync"),
    ("POST", "/api/efactura/companies/1000017/submissions", "file"),
    ("POST", "/api/efactura/invoices/9/buyer-messages", "file"),
    ("GET", "/api/invitations", "invitations"),
    ("POST", "/api/invitations", "invitations"),
    ("POST", "/api/invitations/abc/revoke", "invitations"),
    ("POST", "/api/invitations/abc/accept", None),
    ("PUT", "/api/efactura/companies/1000017/sync-settings", None),
    ("POST", "/api/efactura/companies/1000017/reprocess", None),
    ("POST", "/api/efactura/companies/1000017/sync/extra", None),
    ("GET", "/api/auth/api-keys", None),
    ("PATCH", "/api/auth/me", None),
    ("GET", "/api/portfolio/companies", None),
    ("GET", "/api/notifier/notifications", None),
    ("GET", "/internal/connections/1/access-token", None),
])
def test_key_route_table(method: str, path: str, perm: str | None) -> None:
    assert key_permission_for(method, path) == perm


def test_key_refused_before_introspection_and_scope_reset_for_people() -> None:
    app = FastAPI()
    install_error_handlers(app)

    class Verifier:
        async def verify(self, token: str) -> Principal:
            return Principal(user_id="u1")
    app.state.jwks = Verifier()

    @app.patch("/api/auth/me")
    async def me(p: CurrentUser) -> dict[str, object]:
        return {"user": p.user_id, "scope": key_scope.get() is not None}

    key_scope.set(KeyScope(key_id="k", user_id="u1", companies=frozenset({"1"}), permissions=frozenset({"read"})))
    with TestClient(app) as c:
        r = c.patch("/api/auth/me", headers={"Authorization": "Bearer spvk_whatever"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "api_key_not_allowed"
        r = c.patch("/api/auth/me", headers={"Authorization": "Bearer a.jwt.token"})
        assert r.status_code == 200 and r.json() == {"user": "u1", "scope": False}
