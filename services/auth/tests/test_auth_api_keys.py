"""API keys on the real stack: created only by a verified owner/admin, shown once, stored as a hash, listed with
their last use, revocable at once, optionally expiring, rate limited per key, every use logged; and used as
`Authorization: Bearer spvk_...` against a service that enforces the access model through spvhub_common (company
scope, permissions, verification, roles) exactly as for a person."""
from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from typing import Any

import httpx
import pytest
import structlog
from keyprobe import build_probe
from spvhub_auth.adapters.orm import api_key_usage, api_keys
from spvhub_common.clock import FixedClock
from spvhub_common.logging import configure_logging
from sqlalchemy import func, select

A, B, C = "1000017", "1000025", "1000033"
FIRM, CLIENT = "2000015", "2000031"  # valid CIFs: the control digit is checked


async def _owner(h: Any, *cifs: str, verified: bool = True) -> dict[str, Any]:
    u = await h.signup()
    for cif in cifs:
        await h.grant(u["user"]["id"], cif, "owner", verified=verified)
    return u


async def _create(h: Any, user: dict[str, Any], companies: list[str], permissions: list[str],
                  **extra: Any) -> httpx.Response:
    r = await h.client.post("/api/auth/api-keys", headers=user["headers"],
                            json={"name": "ERP", "companies": companies, "permissions": permissions, **extra})
    if r.status_code == 201:
        h.secrets.add(r.json()["key"])
    return r


async def _key_count(h: Any) -> int:
    async with h.runtime.uow() as uow:
        return int((await uow.session.execute(select(func.count()).select_from(api_keys))).scalar_one())


@pytest.fixture
async def probe(harness):  # type: ignore[no-untyped-def]
    app = build_probe(harness.app, harness.runtime.sessions)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://efactura") as c:
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_key_scoped_to_one_company_reads_it_and_gets_403_on_another(harness, probe) -> None:  # type: ignore[no-untyped-def]
    h = harness
    owner = await _owner(h, A, B)
    r = await _create(h, owner, [A], ["read"])
    assert r.status_code == 201, r.text
    created = r.json()
    key = created["key"]
    assert key.startswith("spvk_") and len(key) > 40
    assert created["prefix"] == key[:12] and created["status"] == "active"
    assert created["companies"] == [A] and created["permissions"] == ["read"]

    ok = await probe.get(f"/api/efactura/companies/{A}/invoices", headers={**bearer(key), "X-Request-ID": "rq-1"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["subject"] == f"key:{created['id']}"
    other = await probe.get(f"/api/efactura/companies/{B}/invoices", headers=bearer(key))
    assert other.status_code == 403 and other.json()["error"]["code"] == "no_access_to_company"
    assert other.json()["error"]["message"].startswith("Nu aveți acces")  # Romanian by default
    listing = await probe.get("/api/efactura/invoices", headers=bearer(key))
    assert listing.json()["cifs"] == [A]
    # the creator, as a person, still sees both
    mine = await probe.get("/api/efactura/invoices", headers=owner["headers"])
    assert mine.json()["cifs"] == [A, B]

    # the list shows the use, never the secret; every use is in the usage log with its request id
    lst = await h.client.get("/api/auth/api-keys", headers=owner["headers"])
    assert lst.status_code == 200
    (item,) = lst.json()["items"]
    assert item["last_used_request_id"]  # the last request's id (the gateway's X-Request-ID)
    assert item["use_count"] == 3 and item["last_used_at"] is not None
    assert key not in lst.text and key[12:] not in lst.text
    usage = await h.client.get(f"/api/auth/api-keys/{created['id']}/usage", headers=owner["headers"])
    rows = usage.json()["items"]
    assert [u["path"] for u in rows][::-1] == [f"/api/efactura/companies/{A}/invoices",
                                                f"/api/efactura/companies/{B}/invoices", "/api/efactura/invoices"]
    assert rows[-1]["request_id"] == "rq-1" and rows[-1]["service"] == "efactura"
    assert {u["outcome"] for u in rows} == {"ok"}
    # stored as a hash only
    async with h.runtime.uow() as uow:
        stored = (await uow.session.execute(select(api_keys))).one()
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in str(tuple(stored))


async def test_revoked_key_stops_at_once(harness, probe) -> None:  # type: ignore[no-untyped-def]
    h = harness
    owner = await _owner(h, A)
    created = (await _create(h, owner, [A], ["read"])).json()
    assert (await probe.get(f"/api/efactura/companies/{A}/invoices", headers=bearer(created["key"]))).status_code \
        == 200
    # someone else (even a member of the company) can neither revoke nor see it, and the key keeps working
    stranger = await h.signup()
    await h.grant(stranger["user"]["id"], A, "member")
    r = await h.client.post(f"/api/auth/api-keys/{created['id']}/revoke", headers=stranger["headers"])
    assert r.status_code == 404 and r.json()["error"]["code"] == "api_key_not_found"
    assert (await h.client.get("/api/auth/api-keys", headers=stranger["headers"])).json()["items"] == []
    assert (await probe.get(f"/api/efactura/companies/{A}/invoices", headers=bearer(created["key"]))).status_code \
        == 200
    rv = await h.client.post(f"/api/auth/api-keys/{created['id']}/revoke", headers=owner["headers"])
    assert rv.status_code == 200 and rv.json()["status"] == "revoked"
    nxt = await probe.get(f"/api/efactura/companies/{A}/invoices", headers=bearer(created["key"]))
    assert nxt.status_code == 401 and nxt.json()["error"]["code"] == "api_key_revoked"
    assert nxt.headers["WWW-Authenticate"] == "Bearer"
    assert nxt.json()["error"]["message"] == "Cheia API a fost revocată."
    # an unknown key is 401 too
    bad = await probe.get(f"/api/efactura/companies/{A}/invoices", headers=bearer("spvk_" + "x" * 43))
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"


async def test_read_only_key_cannot_sync_or_file(harness, probe) -> None:  # type: ignore[no-untyped-def]
    h = harness
    owner = await _owner(h, A)
    ro = (await _create(h, owner, [A], ["read"])).json()["key"]
    for path in (f"/api/efactura/companies/{A}/sync", f"/api/efactura/companies/{A}/submissions"):
        r = await probe.post(path, headers=bearer(ro))
        assert r.status_code == 403 and r.json()["error"]["code"] == "api_key_permission_missing", r.text
    # a route keys never reach (settings), whatever their permissions
    full = (await _create(h, owner, [A], ["read", "sync", "file", "invitations"])).json()["key"]
    r = await probe.put(f"/api/efactura/companies/{A}/sync-settings", headers=bearer(full))
    assert r.status_code == 403 and r.json()["error"]["code"] == "api_key_not_allowed"
    assert (await probe.post(f"/api/efactura/companies/{A}/sync", headers=bearer(full))).status_code == 202
    assert (await probe.post(f"/api/efactura/companies/{A}/submissions", headers=bearer(full))).status_code == 202
    # keys do not manage keys or the account
    r = await h.client.get("/api/auth/api-keys", headers=bearer(full))
    assert r.status_code == 403 and r.json()["error"]["code"] == "api_key_not_allowed"
    r = await h.client.get("/api/auth/me", headers=bearer(full))
    assert r.status_code == 403


async def test_key_follows_the_access_model(harness, probe) -> None:  # type: ignore[no-untyped-def]
    """Unverified company -> company_not_verified; the creator demoted -> the key loses the company."""
    h = harness
    owner = await _owner(h, A, B)
    key = (await _create(h, owner, [A, B], ["read", "sync"])).json()["key"]
    await h.grant(owner["user"]["id"], B, "owner", verified=False)
    r = await probe.get(f"/api/efactura/companies/{B}/invoices", headers=bearer(key))
    assert r.status_code == 403 and r.json()["error"]["code"] == "company_not_verified"
    await h.grant(owner["user"]["id"], A, "member")
    r = await probe.post(f"/api/efactura/companies/{A}/sync", headers=bearer(key))
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_role"
    assert (await probe.get("/api/efactura/invoices", headers=bearer(key))).json()["cifs"] == []


async def test_firm_manager_creates_a_key_for_its_clients(harness, probe) -> None:  # type: ignore[no-untyped-def]
    h = harness
    firm_owner = await _owner(h, FIRM)
    await h.grant(firm_owner["user"]["id"], CLIENT, "accountant", via_firm_cif=FIRM)
    r = await _create(h, firm_owner, [FIRM, CLIENT], ["read"])
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    assert (await probe.get(f"/api/efactura/companies/{CLIENT}/invoices", headers=bearer(key))).status_code == 200
    # the client's own people see the key on their company and may revoke it
    client_owner = await _owner(h, CLIENT)
    seen = (await h.client.get("/api/auth/api-keys", headers=client_owner["headers"])).json()["items"]
    assert [k["id"] for k in seen] == [r.json()["id"]]
    # a firm's plain member may not create one for the client
    firm_member = await h.signup()
    await h.grant(firm_member["user"]["id"], FIRM, "member")
    await h.grant(firm_member["user"]["id"], CLIENT, "accountant", via_firm_cif=FIRM)
    before = await _key_count(h)
    r = await _create(h, firm_member, [CLIENT], ["read"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_role"
    assert await _key_count(h) == before


async def test_creation_refused_to_member_unverified_and_strangers(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    member = await h.signup()
    await h.grant(member["user"]["id"], A, "member")
    r = await _create(h, member, [A], ["read"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_role"
    assert "proprietar" in r.json()["error"]["message"]
    unverified = await _owner(h, B, verified=False)
    r = await _create(h, unverified, [B], ["read"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "company_not_verified"
    owner = await _owner(h, C)
    r = await _create(h, owner, [C, A], ["read"])  # one company out of reach refuses the whole key
    assert r.status_code == 403 and r.json()["error"]["code"] == "no_access_to_company"
    r = await _create(h, owner, [C], ["admin"])
    assert r.status_code == 422
    r = await h.client.post("/api/auth/api-keys", json={"name": "x", "companies": [C], "permissions": ["read"]})
    assert r.status_code == 401
    assert await _key_count(h) == 0


async def test_expiry(harness, probe) -> None:  # type: ignore[no-untyped-def]
    h = harness
    wall = FixedClock(h.deps.wall.now())
    h.deps.wall = wall
    owner = await _owner(h, A)
    r = await _create(h, owner, [A], ["read"], expires_at=(wall.now() - timedelta(minutes=1)).isoformat())
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_expiry"
    created = (await _create(h, owner, [A], ["read"],
                             expires_at=(wall.now() + timedelta(hours=1)).isoformat())).json()
    assert (await probe.get(f"/api/efactura/companies/{A}/invoices", headers=bearer(created["key"]))).status_code \
        == 200
    wall.advance(hours=1, seconds=1)
    r = await probe.get(f"/api/efactura/companies/{A}/invoices", headers=bearer(created["key"]))
    assert r.status_code == 401 and r.json()["error"]["code"] == "api_key_expired"
    (item,) = (await h.client.get("/api/auth/api-keys", headers=owner["headers"])).json()["items"]
    assert item["status"] == "expired"


@pytest.mark.parametrize("harness", [{"settings": {"api_key_rate_limit": 3, "api_key_rate_window_seconds": 60}}],
                         indirect=True)
async def test_rate_limited_per_key(harness, probe) -> None:  # type: ignore[no-untyped-def]
    h = harness
    wall = FixedClock(h.deps.wall.now())
    h.deps.wall = wall
    owner = await _owner(h, A)
    k1 = (await _create(h, owner, [A], ["read"])).json()["key"]
    k2 = (await _create(h, owner, [A], ["read"])).json()["key"]
    url = f"/api/efactura/companies/{A}/invoices"
    for _ in range(3):
        assert (await probe.get(url, headers=bearer(k1))).status_code == 200
    r = await probe.get(url, headers=bearer(k1))
    assert r.status_code == 429 and r.json()["error"]["code"] == "api_key_rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert (await probe.get(url, headers=bearer(k2))).status_code == 200  # per key, not per user
    wall.advance(seconds=61)
    assert (await probe.get(url, headers=bearer(k1))).status_code == 200
    async with h.runtime.uow() as uow:
        outcomes = [r[0] for r in await uow.session.execute(select(api_key_usage.c.outcome)
                                                             .order_by(api_key_usage.c.id))]
    assert outcomes.count("rate_limited") == 1


async def test_secret_never_in_logs_or_answers(harness, probe, caplog, capsys) -> None:  # type: ignore[no-untyped-def]
    h = harness
    configure_logging("auth", "DEBUG")
    structlog.configure(cache_logger_on_first_use=False)
    caplog.set_level(logging.DEBUG)
    try:
        owner = await _owner(h, A, B)
        created = (await _create(h, owner, [A], ["read"])).json()
        key = created["key"]
        await probe.get(f"/api/efactura/companies/{A}/invoices", headers=bearer(key))
        await probe.get(f"/api/efactura/companies/{B}/invoices", headers=bearer(key))
        await probe.post(f"/api/efactura/companies/{A}/sync", headers=bearer(key))
        await h.client.get("/api/auth/api-keys", headers=owner["headers"])
        await h.client.get(f"/api/auth/api-keys/{created['id']}/usage", headers=owner["headers"])
        await h.client.post(f"/api/auth/api-keys/{created['id']}/revoke", headers=owner["headers"])
        await probe.get(f"/api/efactura/companies/{A}/invoices", headers=bearer(key))
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers = []
    out = capsys.readouterr()
    text = caplog.text + out.out + out.err + "".join(h.error_bodies)
    assert "api key created" in text  # the log is there, with the id only
    assert created["id"] in text
    secret_part = key[len("spvk_"):]
    assert secret_part not in text
    async with h.runtime.uow() as uow:
        usage = " ".join(str(tuple(r)) for r in (await uow.session.execute(select(api_key_usage))).all())
    assert secret_part not in usage


async def test_usage_log_is_purged_after_its_keep_days(harness, probe) -> None:  # type: ignore[no-untyped-def]
    from spvhub_auth.handlers import purge_usage

    h = harness
    wall = FixedClock(h.deps.wall.now())
    h.deps.wall = wall
    owner = await _owner(h, A)
    created = (await _create(h, owner, [A], ["read"])).json()
    await probe.get(f"/api/efactura/companies/{A}/invoices", headers=bearer(created["key"]))
    wall.advance(days=h.settings.api_key_usage_keep_days - 1)
    await probe.get(f"/api/efactura/companies/{A}/invoices", headers=bearer(created["key"]))
    async with h.runtime.uow() as uow:
        assert await purge_usage(uow, wall.now() + timedelta(days=2), h.settings.api_key_usage_keep_days) == 1
        await uow.commit()
    usage = await h.client.get(f"/api/auth/api-keys/{created['id']}/usage", headers=owner["headers"])
    assert len(usage.json()["items"]) == 1
    (item,) = (await h.client.get("/api/auth/api-keys", headers=owner["headers"])).json()["items"]
    assert item["use_count"] == 2
