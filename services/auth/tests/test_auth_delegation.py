"""Delegation links: the company creates a single-use 24 h link; the accountant opens it and authorizes with
the accountant's own certificate; used, revoked and expired links are refused."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from spvhub_auth.adapters.orm import delegation_links
from sqlalchemy import select

CIF = "2000023"


async def test_accountant_authorizes_through_a_link(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    owner = await h.signup(name="Patron Firma")
    await h.grant(owner["user"]["id"], CIF)
    link = (await h.client.post("/api/auth/anaf/delegations", json={"company_cif": CIF}, headers=owner["headers"]))
    assert link.status_code == 201, link.text
    link = link.json()
    h.secrets.add(link["token"])
    assert link["status"] == "open"
    assert timedelta(hours=23, minutes=59) < (
        __import__("datetime").datetime.fromisoformat(link["expires_at"]) -
        __import__("datetime").datetime.fromisoformat(link["created_at"])) <= timedelta(hours=24)
    async with h.runtime.uow() as uow:
        row = (await uow.session.execute(select(delegation_links))).one()
    assert row.token_hash != link["token"] and link["token"] not in str(tuple(row))

    # the accountant is signed in on the platform, without any access to the client company
    accountant = await h.signup(name="Popa Ion (contabil)")
    opened = await h.client.post("/api/auth/anaf/delegations/open", json={"token": link["token"]},
                                 headers=accountant["headers"])
    assert opened.status_code == 200, opened.text
    assert opened.json()["company_cif"] == CIF
    r = await h.follow_to_callback(await h.browse_authorize(opened.json()["authorize_url"], "acc"))
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["company_cif"] == CIF and c["authorizing_person"] == "Popa Ion (contabil)" and c["via_delegation"]
    assert c["authorized_by_user_id"] == owner["user"]["id"]
    ev = (await h.events("auth.connection-authorized"))[-1][1]
    assert ev.via_delegation and ev.holder_name == "Popa Ion (contabil)"
    # the owner sees the connection; the link is spent
    items = (await h.client.get("/api/auth/anaf/connections", headers=owner["headers"])).json()["items"]
    assert [i["id"] for i in items] == [c["id"]]
    again = await h.client.post("/api/auth/anaf/delegations/open", json={"token": link["token"]})
    assert again.status_code == 410 and again.json()["error"]["code"] == "delegation_link_used"
    listed = (await h.client.get(f"/api/auth/anaf/delegations?company_cif={CIF}", headers=owner["headers"])).json()
    assert listed["items"][0]["status"] == "used" and listed["items"][0]["connection_id"] == c["id"]


async def test_browser_link_revoked_expired_and_single_use(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    owner = await h.signup()
    await h.grant(owner["user"]["id"], CIF)

    async def new_link() -> dict:  # type: ignore[type-arg]
        r = await h.client.post("/api/auth/anaf/delegations", json={"company_cif": CIF}, headers=owner["headers"])
        h.secrets.add(r.json()["token"])
        return r.json()

    # opened anonymously in a browser: straight to ANAF's certificate page
    link = await new_link()
    url = urlsplit(link["url"])
    r = await h.client.get(f"{url.path}?{url.query}&name=Contabil%20Anonim")
    assert r.status_code == 302 and "/anaf-oauth2/v1/authorize?" in r.headers["location"]
    # opened twice before completing: only one authorization can consume the link
    second = (await h.client.post("/api/auth/anaf/delegations/open", json={"token": link["token"], "name": "X"})).json()
    first_cb = await h.follow_to_callback(await h.browse_authorize(r.headers["location"], "acc"))
    assert first_cb.status_code == 200 and first_cb.json()["authorizing_person"] == "Contabil Anonim"
    second_cb = await h.follow_to_callback(await h.browse_authorize(second["authorize_url"], "acc"))
    assert second_cb.status_code == 410 and second_cb.json()["error"]["code"] == "delegation_link_unusable"

    revoked = await new_link()
    rv = await h.client.post(f"/api/auth/anaf/delegations/{revoked['id']}/revoke", headers=owner["headers"])
    assert rv.json()["status"] == "revoked"
    r = await h.client.post("/api/auth/anaf/delegations/open", json={"token": revoked["token"]})
    assert r.status_code == 410 and r.json()["error"]["code"] == "delegation_link_revoked"

    expired = await new_link()
    h.emu_state.clock.advance(24 * 3600 + 60)
    r = await h.client.post("/api/auth/anaf/delegations/open", json={"token": expired["token"]})
    assert r.status_code == 410 and r.json()["error"]["code"] == "delegation_link_expired"
    r = await h.client.post("/api/auth/anaf/delegations/open", json={"token": "not-a-link"})
    assert r.status_code == 404
    # only people with access to the company create links
    stranger = await h.signup()
    r = await h.client.post("/api/auth/anaf/delegations", json={"company_cif": CIF}, headers=stranger["headers"])
    assert r.status_code == 403
