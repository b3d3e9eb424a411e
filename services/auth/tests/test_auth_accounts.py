"""Platform accounts: sign-up, login, rotating refresh tokens with reuse detection, JWKS verification by other
services, profile and locale, signing key encrypted at rest (login throttling: test_auth_throttling.py)."""
from __future__ import annotations

from spvhub_auth.adapters.orm import signing_keys, users
from spvhub_common.events.auth import AccountEmailRequested, ProfileUpdated, UserRegistered
from spvhub_common.security import JwksVerifier
from sqlalchemy import select


async def test_signup_login_and_jwks_verification(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    s = await h.signup(name="Ana Pop", email="Ana@Example.ro", locale="en")
    assert s["user"]["email"] == "ana@example.ro" and s["user"]["locale"] == "en"
    jwks = (await h.client.get("/.well-known/jwks.json")).json()
    assert len(jwks["keys"]) == 1 and jwks["keys"][0]["alg"] == "RS256" and "d" not in jwks["keys"][0]
    p = await JwksVerifier("", "spvhub-auth", "spvhub", static_jwks=jwks).verify(s["access_token"])
    assert p.user_id == s["user"]["id"] and p.email == "ana@example.ro" and p.name == "Ana Pop"
    assert p.locale == "en" and p.claims["typ"] == "access" and p.claims["exp"] - p.claims["iat"] == 900
    dup = await h.client.post("/api/auth/signup", json={"email": "ana@example.ro", "password": "x" * 12, "name": "B"})
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "email_taken"
    weak = await h.client.post("/api/auth/signup", json={"email": "b@example.ro", "password": "short", "name": "B"})
    assert weak.status_code == 422 and weak.json()["error"]["code"] == "weak_password"
    r = await h.client.post("/api/auth/login", json={"email": "ANA@example.ro", "password": "correct horse 1"})
    assert r.status_code == 200 and r.json()["user"]["id"] == s["user"]["id"]
    me = await h.client.get("/api/auth/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    assert me.json()["name"] == "Ana Pop"
    patched = await h.client.patch("/api/auth/me", json={"locale": "ro"}, headers=s["headers"])
    assert patched.json()["locale"] == "ro"
    evs = await h.events("auth.user-registered")
    assert len(evs) == 1 and isinstance(evs[0][1], UserRegistered) and evs[0][1].email == "ana@example.ro"
    # the password is stored as an argon2id hash; the signing key is stored encrypted
    async with h.runtime.uow() as uow:
        u = (await uow.session.execute(select(users))).one()
        k = (await uow.session.execute(select(signing_keys))).one()
    assert u.password_hash.startswith("$argon2id$")
    assert bytes(k.private_key_enc).startswith(b"v1:dev1:") and b"PRIVATE KEY" not in bytes(k.private_key_enc)


async def test_the_profile_language_is_the_one_locale_and_its_change_is_announced(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    s = await h.signup(name="Ion Pop", locale="ro")
    r = await h.client.patch("/api/auth/me", json={"locale": "en"}, headers=s["headers"])
    assert r.status_code == 200 and r.json()["locale"] == "en"
    (_, ev), = await h.events("auth.profile-updated")
    assert isinstance(ev, ProfileUpdated) and (ev.user_id, ev.name, ev.locale) == (s["user"]["id"], "Ion Pop", "en")
    # nothing changed, or a refused change: no event, the locale stays
    assert (await h.client.patch("/api/auth/me", json={"locale": "en"}, headers=s["headers"])).status_code == 200
    bad = await h.client.patch("/api/auth/me", json={"locale": "fr"}, headers=s["headers"])
    assert bad.status_code == 422
    assert len(await h.events("auth.profile-updated")) == 1
    assert (await h.client.get("/api/auth/me", headers=s["headers"])).json()["locale"] == "en"
    # the next access token and the account e-mails speak it
    fresh = (await h.client.post("/api/auth/token/refresh", json={"refresh_token": s["refresh_token"]})).json()
    h.secrets.update({fresh["access_token"], fresh["refresh_token"]})
    jwks = (await h.client.get("/.well-known/jwks.json")).json()
    principal = await JwksVerifier("", "spvhub-auth", "spvhub", static_jwks=jwks).verify(fresh["access_token"])
    assert principal.locale == "en"
    assert (await h.client.post("/api/auth/password/forgot", json={"email": s["user"]["email"]})).status_code == 202
    mails = [e for _, e in await h.events("auth.account-email-requested") if isinstance(e, AccountEmailRequested)]
    assert mails[-1].kind == "password_reset" and mails[-1].locale == "en"


async def test_refresh_rotation_and_reuse_detection(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    s = await h.signup()
    r1 = await h.client.post("/api/auth/token/refresh", json={"refresh_token": s["refresh_token"]})
    assert r1.status_code == 200 and r1.json()["refresh_token"] != s["refresh_token"]
    h.secrets.add(r1.json()["refresh_token"])
    # the old one is presented again: theft assumed, the whole family ends
    again = await h.client.post("/api/auth/token/refresh", json={"refresh_token": s["refresh_token"]})
    assert again.status_code == 401 and again.json()["error"]["code"] == "refresh_token_reused"
    r2 = await h.client.post("/api/auth/token/refresh", json={"refresh_token": r1.json()["refresh_token"]})
    assert r2.status_code == 401 and r2.json()["error"]["code"] == "session_revoked"
    bad = await h.client.post("/api/auth/token/refresh", json={"refresh_token": "nope.nope"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_refresh_token"
    # logout ends a session
    s2 = (await h.client.post("/api/auth/login", json={"email": s["user"]["email"], "password": "correct horse 1"})
          ).json()
    h.secrets.update({s2["refresh_token"], s2["access_token"]})
    assert (await h.client.post("/api/auth/logout", json={"refresh_token": s2["refresh_token"]})).status_code == 204
    r = await h.client.post("/api/auth/token/refresh", json={"refresh_token": s2["refresh_token"]})
    assert r.status_code == 401


async def test_signing_key_rotation_keeps_issued_tokens_valid(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    s = await h.signup()
    old_kid = h.deps.ring.active_kid
    new_kid = await h.deps.ring.rotate()
    assert new_kid != old_kid
    jwks = (await h.client.get("/.well-known/jwks.json")).json()
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, new_kid}
    verifier = JwksVerifier("", "spvhub-auth", "spvhub", static_jwks=jwks)
    assert (await verifier.verify(s["access_token"])).user_id == s["user"]["id"]
    fresh = (await h.client.post("/api/auth/token/refresh", json={"refresh_token": s["refresh_token"]})).json()
    h.secrets.update({fresh["access_token"], fresh["refresh_token"]})
    import jwt as pyjwt
    assert pyjwt.get_unverified_header(fresh["access_token"])["kid"] == new_kid
    assert (await h.client.get("/api/auth/me", headers={"Authorization": f"Bearer {s['access_token']}"})
            ).status_code == 200
