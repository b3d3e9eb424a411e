"""Throttling of auth's public entry points. Failed logins slow an account down (429 `login_throttled`,
Retry-After 1, 2, 4 ... s, capped) instead of locking its owner out; failures are limited per client address
(429 `too_many_login_attempts`), the address coming from X-Forwarded-For only behind a trusted proxy; token refresh
and delegation-link opening are rate limited per address and per user/link (429 `rate_limited`). Every refusal
is checked for having no side effect (no session, no rotation, no authorization state)."""
from __future__ import annotations

import asyncio

import pytest
from spvhub_auth.adapters.orm import oauth_states, refresh_tokens
from sqlalchemy import func, select

ATTACKER = {"X-Forwarded-For": "203.0.113.66"}
OWNER_ELSEWHERE = {"X-Forwarded-For": "198.51.100.7"}
TRUSTED = ["127.0.0.1/32"]  # the test client is the gateway


async def _count(h, table) -> int:  # type: ignore[no-untyped-def]
    async with h.runtime.uow() as uow:
        return int((await uow.session.execute(select(func.count()).select_from(table))).scalar_one())


async def _login(h, email: str, password: str, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return await h.client.post("/api/auth/login", json={"email": email, "password": password}, headers=headers or {})


@pytest.mark.parametrize("harness", [{"settings": {
    "login_free_failures": 2, "login_delay_base_seconds": 1, "login_delay_max_seconds": 2,
    "login_ip_max_failures": 100, "trusted_proxies": TRUSTED}}], indirect=True)
async def test_failures_slow_the_account_down_and_the_owner_still_gets_in(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    await h.signup(email="victim@example.ro")
    email, right = "victim@example.ro", "correct horse 1"
    r = await _login(h, email, "guess 1", ATTACKER)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    r = await _login(h, email, "guess 2", ATTACKER)
    assert r.status_code == 401 and r.json()["error"]["details"]["retry_after_seconds"] == 1
    sessions = await _count(h, refresh_tokens)
    # the delay is enforced before the password is even looked at: a right guess learns nothing
    r = await _login(h, email, right, ATTACKER)
    assert r.status_code == 429 and r.json()["error"]["code"] == "login_throttled"
    assert r.headers["Retry-After"] == "1" and r.json()["error"]["message"].startswith("După")
    assert await _count(h, refresh_tokens) == sessions
    await asyncio.sleep(1.05)
    r = await _login(h, email, "guess 3", ATTACKER)
    assert r.status_code == 401 and r.json()["error"]["details"]["retry_after_seconds"] == 2
    assert (await _login(h, email, "guess 4", ATTACKER)).headers["Retry-After"] == "2"
    await asyncio.sleep(2.05)
    r = await _login(h, email, "guess 5", ATTACKER)
    assert r.json()["error"]["details"]["retry_after_seconds"] == 2  # capped, never a 15-minute lockout
    # the owner, from another address, waits at most the short delay, then signs in
    r = await _login(h, email, right, OWNER_ELSEWHERE)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) <= 2
    await asyncio.sleep(2.05)
    r = await _login(h, email, right, OWNER_ELSEWHERE)
    assert r.status_code == 200, r.text
    h.secrets.update({r.json()["access_token"], r.json()["refresh_token"]})
    # a success clears the slowdown
    r = await _login(h, email, "typo", OWNER_ELSEWHERE)
    assert r.status_code == 401 and r.json()["error"]["details"] == {}
    # an e-mail without an account is slowed down exactly the same (no way to tell which accounts exist)
    for i in range(2):
        assert (await _login(h, "nobody@example.ro", f"x{i}", ATTACKER)).status_code == 401
    r = await _login(h, "nobody@example.ro", "x", ATTACKER)
    assert r.status_code == 429 and r.json()["error"]["code"] == "login_throttled"


@pytest.mark.parametrize("harness", [{"settings": {"login_ip_max_failures": 4, "login_free_failures": 100,
                                                   "trusted_proxies": TRUSTED}}], indirect=True)
async def test_failures_are_limited_per_client_address(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    await h.signup(email="ana@example.ro")
    for i in range(4):
        r = await _login(h, f"ghost{i}@example.ro", "whatever1", ATTACKER)
        assert r.status_code == 401
    sessions = await _count(h, refresh_tokens)
    r = await _login(h, "ana@example.ro", "correct horse 1", ATTACKER)
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_login_attempts"
    assert int(r.headers["Retry-After"]) > 0 and r.json()["error"]["message"].startswith("Prea multe")
    assert await _count(h, refresh_tokens) == sessions
    # a client cannot escape its address by writing X-Forwarded-For itself: the gateway appends the real one
    spoofed = {"X-Forwarded-For": "192.0.2.1, 203.0.113.66"}
    assert (await _login(h, "ana@example.ro", "correct horse 1", spoofed)).status_code == 429
    # another address is not affected
    r = await _login(h, "ana@example.ro", "correct horse 1", OWNER_ELSEWHERE)
    assert r.status_code == 200
    h.secrets.update({r.json()["access_token"], r.json()["refresh_token"]})


@pytest.mark.parametrize("harness", [{"settings": {"login_ip_max_failures": 2, "login_free_failures": 100}}],
                         indirect=True)
async def test_forwarded_for_is_ignored_without_a_trusted_proxy(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    await h.signup(email="ion@example.ro")
    for i in range(2):  # each from a "different" address, as the client claims
        r = await _login(h, "ion@example.ro", "bad", {"X-Forwarded-For": f"198.51.100.{i + 1}"})
        assert r.status_code == 401
    r = await _login(h, "ion@example.ro", "correct horse 1", {"X-Forwarded-For": "198.51.100.99"})
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_login_attempts"


@pytest.mark.parametrize("harness", [{"settings": {"refresh_ip_max": 3, "refresh_user_max": 2,
                                                   "refresh_window_seconds": 2, "trusted_proxies": TRUSTED}}],
                         indirect=True)
async def test_token_refresh_is_rate_limited_per_address_and_per_user(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    s = await h.signup()
    token = s["refresh_token"]
    for _ in range(2):
        r = await h.client.post("/api/auth/token/refresh", json={"refresh_token": token}, headers=OWNER_ELSEWHERE)
        assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
        token = r.json()["refresh_token"]
        h.secrets.update({token, r.json()["access_token"]})
    # a third rotation by the same user within the window: refused, and the token is not spent
    r = await h.client.post("/api/auth/token/refresh", json={"refresh_token": token}, headers=OWNER_ELSEWHERE)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited" and "Retry-After" in r.headers
    async with h.runtime.uow() as uow:
        row = (await uow.session.execute(select(refresh_tokens).where(
            refresh_tokens.c.id == token.split(".", 1)[0]))).one()
    assert row.used_at is None and row.revoked_at is None
    # per address: guessing from one address is cut off whatever the token
    for _ in range(3):
        r = await h.client.post("/api/auth/token/refresh", json={"refresh_token": "x.y"}, headers=ATTACKER)
        assert r.status_code == 401
    r = await h.client.post("/api/auth/token/refresh", json={"refresh_token": token}, headers=ATTACKER)
    assert r.status_code == 429
    await asyncio.sleep(2.1)
    r = await h.client.post("/api/auth/token/refresh", json={"refresh_token": token}, headers=OWNER_ELSEWHERE)
    assert r.status_code == 200, r.text
    h.secrets.update({r.json()["refresh_token"], r.json()["access_token"]})


@pytest.mark.parametrize("harness", [{"settings": {"delegation_open_ip_max": 3, "delegation_open_link_max": 4,
                                                   "trusted_proxies": TRUSTED}}], indirect=True)
async def test_delegation_link_opening_is_rate_limited(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    owner = await h.signup()
    await h.grant(owner["user"]["id"], "2000023")
    r = await h.client.post("/api/auth/anaf/delegations", json={"company_cif": "2000023"}, headers=owner["headers"])
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    h.secrets.add(token)
    # guessing links from one address
    for i in range(3):
        r = await h.client.post("/api/auth/anaf/delegations/open", json={"token": f"guess-{i}"}, headers=ATTACKER)
        assert r.status_code == 404
    states = await _count(h, oauth_states)
    r = await h.client.post("/api/auth/anaf/delegations/open", json={"token": token}, headers=ATTACKER)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    r = await h.client.get("/api/auth/anaf/delegations/open", params={"token": token}, headers=ATTACKER)
    assert r.status_code == 429
    assert await _count(h, oauth_states) == states  # nothing started
    # the real delegate, elsewhere, opens it; one link cannot be opened over and over from many addresses
    # (the refused attempts above count for the link too: 2 + 2 opened here, the fifth is refused)
    r = await h.client.post("/api/auth/anaf/delegations/open", json={"token": token}, headers=OWNER_ELSEWHERE)
    assert r.status_code == 200, r.text
    r = await h.client.post("/api/auth/anaf/delegations/open", json={"token": token},
                            headers={"X-Forwarded-For": "192.0.2.44"})
    assert r.status_code == 200
    r = await h.client.post("/api/auth/anaf/delegations/open", json={"token": token},
                            headers={"X-Forwarded-For": "192.0.2.45"})
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"


async def test_login_answers_are_never_stored(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    s = await h.signup(email="cache@example.ro")
    r = await _login(h, "cache@example.ro", "correct horse 1")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    h.secrets.update({r.json()["access_token"], r.json()["refresh_token"]})
    assert s["user"]["id"]
