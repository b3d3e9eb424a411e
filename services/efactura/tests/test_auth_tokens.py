"""The sync asks auth for tokens through the platform's one client (spvhub_common.tokens), and what auth's answers
become stays efactura's: the text of a company's `last_error`, the pause of a connection and its reason, and the
retry after a refresh auth could not do. A fake auth behind the real client, the in-process emulator, the real
PostgreSQL."""
from __future__ import annotations

from typing import Any

import httpx
import pytest
from efactura_kit import CLIENT_ID, Harness, company_cifs, efactura_settings, new_emulator
from spvhub_common.tokens import InternalTokenClient
from spvhub_efactura.adapters import ledger
from spvhub_efactura.adapters.orm import companies, connections, messages
from sqlalchemy import func, select


class FakeAuth:
    """auth's internal token endpoints: `mode` says how it answers (ok, 409, 404, 503, down); `bogus_first` hands
    out one token ANAF refuses before the real ones; `refresh_fails` answers every refresh 503."""

    def __init__(self, emu: httpx.AsyncClient) -> None:
        self.emu = emu
        self.mode = "ok"
        self.bogus_first = False
        self.refresh_fails = False
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path))
        assert request.headers["x-service-name"] == "efactura"
        if self.mode == "down":
            raise httpx.ConnectError("All connection attempts failed")
        if self.mode in ("409", "404", "503"):
            code = {"409": "reauthorization_required", "404": "no_connection", "503": "anaf_unavailable"}[self.mode]
            return httpx.Response(int(self.mode), json={"error": {"code": code, "message": "Mesaj pentru om."}})
        if request.method == "POST" and self.refresh_fails:
            return httpx.Response(503, json={"error": {"code": "anaf_unavailable", "message": "Incercati din nou."}})
        cid = request.url.path.split("/")[3]
        if self.bogus_first:
            self.bogus_first = False
            token = "not-a-token-anaf-knows"
        else:
            r = await self.emu.post("/__admin/tokens", json={"client_id": CLIENT_ID, "certificate": cid})
            token = r.json()["access_token"]
        return httpx.Response(200, json={"connection_id": cid, "access_token": token, "expires_at": None,
                                         "company_cif": "", "status": "active"})


async def _sync_once(h: Harness, cif: str) -> None:
    await h.sync.request_sync(cif)
    await h.sync.tick()
    await h.sync.wait_idle()


async def _company(h: Harness, cif: str) -> Any:
    async with h.runtime.sessions() as s:
        return (await s.execute(select(companies.c.last_error).where(companies.c.cif == cif))).one()


async def _connection(h: Harness, cid: str) -> Any:
    async with h.runtime.sessions() as s:
        return (await s.execute(select(connections.c.status, connections.c.status_reason)
                                .where(connections.c.connection_id == cid))).first()


async def _messages(h: Harness) -> int:
    async with h.runtime.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(messages))).scalar() or 0)


@pytest.fixture
async def harness(fresh_database: str, topic_prefix: str, minio_up: None, kafka_up: str) -> Any:
    async with Harness(efactura_settings(fresh_database, topic_prefix), new_emulator(1)) as h:
        auth = FakeAuth(h.emu)
        client = InternalTokenClient("http://auth", "dev-service-token", "efactura",
                                     transport=httpx.MockTransport(auth), max_age=60.0)
        h.sync.connections.tokens = client
        [cif] = company_cifs(1)
        await h.admin("invoices/generate", {"cuis": [cif], "per_company_per_day": 1, "days": 3})
        await h.grant("acc", [cif])
        async with h.runtime.uow() as uow:  # auth told efactura of the connection (connection-authorized)
            await ledger.upsert_connection(uow.session, "acc", cif, "active")
            await uow.commit()
        yield h, auth, client, cif
        await client.aclose()


@pytest.mark.parametrize("mode,last_error", [
    ("503", "AuthUnavailable: auth answered 503"),
    ("down", "AuthUnavailable: All connection attempts failed"),
])
async def test_auth_failing_is_retried_with_the_same_text(harness: Any, mode: str, last_error: str) -> None:
    h, auth, _, cif = harness
    auth.mode = mode
    await _sync_once(h, cif)
    assert (await _company(h, cif)).last_error == last_error
    assert tuple(await _connection(h, "acc")) == ("active", None)  # transient: the connection is not paused
    assert await _messages(h) == 0  # nothing listed without a token
    auth.mode = "ok"
    await h.sync_until_settled([cif])
    assert (await _company(h, cif)).last_error is None and await _messages(h) == 3


@pytest.mark.parametrize("mode,reason", [("409", "auth: ReauthorizationRequired"), ("404", "auth: NoConnection")])
async def test_auth_refusing_for_good_pauses_the_connection(harness: Any, mode: str, reason: str) -> None:
    h, auth, _, cif = harness
    auth.mode = mode
    await _sync_once(h, cif)
    assert (await _company(h, cif)).last_error == "SyncPaused: the connection needs a new ANAF authorization"
    assert tuple(await _connection(h, "acc")) == ("paused", reason)
    assert await _messages(h) == 0
    assert "acc" not in (await _company(h, cif)).last_error  # never a connection id in a company's health


async def test_a_token_anaf_refuses_is_refreshed_once(harness: Any) -> None:
    h, auth, _, cif = harness
    auth.bogus_first = True  # ANAF answers 401 to the first token: the sync asks auth to refresh, once
    await h.sync_until_settled([cif])
    assert [m for m, _ in auth.calls] == ["GET", "POST"]
    assert (await _company(h, cif)).last_error is None and await _messages(h) == 3


async def test_a_refresh_auth_cannot_do_now_falls_back_to_its_current_token(harness: Any) -> None:
    h, auth, _, cif = harness
    auth.bogus_first, auth.refresh_fails = True, True  # refresh answered 503: auth's current token is tried
    await h.sync_until_settled([cif])
    assert [m for m, _ in auth.calls] == ["GET", "POST", "GET"]
    assert (await _company(h, cif)).last_error is None and await _messages(h) == 3
