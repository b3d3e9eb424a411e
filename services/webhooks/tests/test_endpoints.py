"""Endpoints through the HTTP API against the real PostgreSQL: who may register what, the secret shown once and
stored encrypted, list/get/update/rotate/delete, refusals with no side effect, and tenant isolation of deliveries."""
from __future__ import annotations

from typing import Any

from spvhub_common.events.portfolio import AccessChanged, CollaborationStarted
from sqlalchemy import text
from whkit import CLIENT, FIRM, INVOICE, OTHER, STRONG, Env, invoice, local_name, make_env, setup_tenants

URL = "https://erp.example.ro/hooks"


async def register(env: Env, user: str = "firm-owner", **kw: Any) -> Any:
    body = {"tenant_cif": FIRM, "url": URL, "event_types": [INVOICE], **kw}
    return await env.client.post("/api/webhooks/endpoints", json=body, headers=env.h(user))


async def count(env: Env, table: str) -> int:
    return int((await env.fetch(f"SELECT count(*) FROM {table}"))[0][0])


async def test_register_list_update_rotate_delete(env: Env) -> None:
    await setup_tenants(env)
    types = (await env.client.get("/api/webhooks/event-types", headers=env.h("firm-owner"))).json()
    assert INVOICE in {t["type"] for t in types}
    r = await register(env, cifs=[FIRM, "RO" + CLIENT], description="ERP")
    assert r.status_code == 201, r.text
    ep = r.json()
    secret = ep["secret"]
    assert secret.startswith("whsec_") and ep["cifs"] == [FIRM, CLIENT] and ep["enabled"]
    # stored encrypted, never readable again
    stored = (await env.fetch("SELECT secret_enc FROM endpoints"))[0][0]
    assert secret.encode() not in bytes(stored) and secret.split("_", 1)[1].encode() not in bytes(stored)
    got = (await env.client.get(f"/api/webhooks/endpoints/{ep['id']}", headers=env.h("firm-owner"))).json()
    assert "secret" not in got and got["url"] == URL
    listed = (await env.client.get("/api/webhooks/endpoints", headers=env.h("firm-owner"))).json()
    assert [e["id"] for e in listed] == [ep["id"]]
    assert (await env.client.get("/api/webhooks/endpoints", headers=env.h("other-owner"))).json() == []

    r = await env.client.patch(f"/api/webhooks/endpoints/{ep['id']}", headers=env.h("firm-owner"),
                               json={"event_types": [INVOICE, "ro.spvhub.efactura.invoice-rejected.v1"],
                                     "enabled": False})
    assert r.status_code == 200 and r.json()["disabled_reason"] == "manual" and len(r.json()["event_types"]) == 2
    r = await env.client.patch(f"/api/webhooks/endpoints/{ep['id']}", headers=env.h("firm-owner"),
                               json={"enabled": True})
    assert r.json()["enabled"] and r.json()["disabled_reason"] is None

    r = await env.client.post(f"/api/webhooks/endpoints/{ep['id']}/rotate-secret", headers=env.h("firm-owner"))
    assert r.status_code == 200 and r.json()["secret"] != secret and r.json()["secret_rotated_at"]
    r = await env.client.delete(f"/api/webhooks/endpoints/{ep['id']}", headers=env.h("firm-owner"))
    assert r.status_code == 204 and await count(env, "endpoints") == 0


async def test_refusals_leave_nothing_behind(env: Env) -> None:
    await setup_tenants(env)
    cases = [
        ("firm-member", {}, 403, "insufficient_role"),
        ("other-owner", {}, 403, "no_access_to_company"),
        ("firm-owner", {"event_types": ["ro.spvhub.portfolio.access-changed.v1"]}, 422, "unknown_event_type"),
        ("firm-owner", {"cifs": [OTHER]}, 403, "no_access_to_company"),
        ("firm-owner", {"cifs": ["abc"]}, 422, "invalid_cifs"),
        ("firm-owner", {"url": "ftp://erp.example.ro/"}, 422, "webhook_target_refused"),
    ]
    for user, kw, status, code in cases:
        r = await register(env, user, **kw)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (user, kw, r.text)
    assert "Nu aveți acces" in (await register(env, "other-owner")).json()["error"]["message"]
    assert await count(env, "endpoints") == 0
    ep = (await register(env)).json()
    r = await env.client.get(f"/api/webhooks/endpoints/{ep['id']}", headers=env.h("other-owner"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "webhook_endpoint_not_found"
    r = await env.client.delete(f"/api/webhooks/endpoints/{ep['id']}", headers=env.h("firm-member"))
    assert r.status_code == 403 and await count(env, "endpoints") == 1
    base = f"/api/webhooks/endpoints/{ep['id']}"
    r = await env.client.get(f"{base}/deliveries", params={"cursor": "not-a-cursor"}, headers=env.h("firm-owner"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_cursor"
    r = await env.client.post(f"{base}/replay", headers=env.h("firm-owner"),
                              json={"since": "2025-01-02T00:00:00", "until": "2025-01-01T00:00:00"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_range"
    r = await env.client.post(f"{base}/replay", headers=env.h("firm-owner"),  # no zone: UTC
                              json={"since": "2025-01-01T00:00:00", "until": "2025-01-02T00:00:00"})
    assert r.status_code == 202 and r.json() == {"replayed": 0}
    r = await env.client.post(f"{base}/deliveries/nope/replay", headers=env.h("firm-owner"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "webhook_delivery_not_found"
    r = await env.client.post("/api/webhooks/endpoints", headers=env.h("firm-owner"), json={
        "tenant_cif": FIRM, "url": URL, "event_types": [INVOICE], "cifs": ["١٢٣"]})
    assert r.status_code == 422 and await count(env, "endpoints") == 1


async def test_a_loopback_target_is_refused_with_prod_settings(fresh_database: str) -> None:
    env = await make_env(fresh_database, env="prod", **STRONG)
    try:
        await setup_tenants(env)
        for url in ("https://127.0.0.1/hook", "https://localhost/hook", "https://[::1]:8443/h",
                    "https://169.254.169.254/latest/meta-data", "http://erp.example.ro/hook",
                    "https://10.0.0.5/h"):
            r = await register(env, url=url)
            assert r.status_code == 422 and r.json()["error"]["code"] == "webhook_target_refused", (url, r.text)
        assert await count(env, "endpoints") == 0
        # a name that resolves to loopback is refused too (resolved and every address checked)
        r = await register(env, url=f"https://{local_name()}/hook")
        assert r.status_code == 422, r.text
    finally:
        await env.client.aclose()
        await env.runtime.engine.dispose()


async def test_tenant_a_never_receives_tenant_b_events(env: Env) -> None:
    await setup_tenants(env)
    a = (await register(env, cifs=[FIRM, CLIENT])).json()
    b = (await env.client.post("/api/webhooks/endpoints", headers=env.h("other-owner"), json={
        "tenant_cif": OTHER, "url": URL, "event_types": [INVOICE]})).json()
    await env.feed(invoice(OTHER))
    await env.feed(invoice(CLIENT))
    await env.feed(invoice(FIRM))
    rows = await env.fetch("SELECT endpoint_id, cif FROM deliveries ORDER BY cif")
    assert sorted((r.endpoint_id, r.cif) for r in rows) == sorted([(a["id"], FIRM), (a["id"], CLIENT),
                                                                   (b["id"], OTHER)])
    # the collaboration ends (the firm's grant on the client goes): the client's events stop at once
    await env.feed(AccessChanged(cif=CLIENT, user_id="firm-owner", role="accountant", granted=False,
                                 via_firm_cif=FIRM))
    await env.feed(invoice(CLIENT, 2))
    assert await count(env, "deliveries") == 3
    # events of subscribed types only; a collaboration event reaches both sides' tenants when subscribed
    await env.feed(CollaborationStarted(firm_cif=FIRM, client_cif=OTHER))
    assert await count(env, "deliveries") == 3


async def test_the_delivery_log_pages_by_cursor_newest_first(env: Env) -> None:
    await setup_tenants(env)
    ep = (await register(env, cifs=[FIRM, CLIENT])).json()
    for n in range(7):
        await env.feed(invoice(FIRM if n % 2 else CLIENT, n))
    async with env.runtime.engine.begin() as conn:
        await conn.execute(text("UPDATE deliveries SET status = 'failed' WHERE id IN "
                                "(SELECT id FROM deliveries ORDER BY created_at LIMIT 3)"))
    rows = await env.fetch("SELECT id, status FROM deliveries ORDER BY created_at DESC, id DESC")
    assert len(rows) == 7

    async def walk(**params: Any) -> tuple[list[str], list[dict[str, Any]]]:
        got: list[str] = []
        pages: list[dict[str, Any]] = []
        cursor = None
        while True:
            r = await env.client.get(f"/api/webhooks/endpoints/{ep['id']}/deliveries", headers=env.h("firm-owner"),
                                     params={**params, **({"cursor": cursor} if cursor else {})})
            assert r.status_code == 200, r.text
            pages.append(r.json())
            got += [d["id"] for d in pages[-1]["items"]]
            cursor = pages[-1]["next_cursor"]
            if cursor is None or len(pages) > 20:
                return got, pages

    got, pages = await walk(limit=2)
    assert got == [r.id for r in rows] and [len(p["items"]) for p in pages] == [2, 2, 2, 1]
    assert all(p["total"] is None and set(p) == {"items", "next_cursor", "total"} for p in pages)
    got, pages = await walk(limit=2, status="failed")
    assert got == [r.id for r in rows if r.status == "failed"] and len(pages) == 2
    # another tenant's owner cannot read the log with a cursor of it either
    r = await env.client.get(f"/api/webhooks/endpoints/{ep['id']}/deliveries", headers=env.h("other-owner"),
                             params={"cursor": (await walk(limit=2))[1][0]["next_cursor"]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "webhook_endpoint_not_found"
