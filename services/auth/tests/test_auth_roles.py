"""Who may do what with a company's ANAF connections and delegation links: the company's own owners and
administrators manage them (starting an authorization and delegating even before they are verified, since that is
how they get verified); a plain member and a firm's accountant only read; reading needs a verified grant, and having
authorized a connection once gives no access by itself."""
from __future__ import annotations

from spvhub_auth.adapters.orm import anaf_connections, delegation_links
from spvhub_common.anaf import errors as anaf_errors
from spvhub_common.events.auth import ConnectionAuthorized
from sqlalchemy import func, select

CIF = "1000017"
FIRM = "4000046"
EN = {"Accept-Language": "en"}


async def _link_count(h) -> int:  # type: ignore[no-untyped-def]
    async with h.runtime.uow() as uow:
        return int((await uow.session.execute(select(func.count()).select_from(delegation_links))).scalar() or 0)


async def _state(h, connection_id: str) -> str:  # type: ignore[no-untyped-def]
    async with h.runtime.uow() as uow:
        return str((await uow.session.execute(select(anaf_connections.c.state).where(
            anaf_connections.c.id == connection_id))).scalar())


async def test_member_and_firm_accountant_cannot_revoke_or_delegate(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    c, owner = await h.authorized(CIF, name="Patron Firma")
    link = await h.client.post("/api/auth/anaf/delegations", json={"company_cif": CIF}, headers=owner["headers"])
    assert link.status_code == 201, link.text
    link = link.json()
    h.secrets.add(link["token"])
    member = await h.signup(name="Angajat Simplu")
    await h.grant(member["user"]["id"], CIF, role="member")
    accountant = await h.signup(name="Contabil Firma")
    await h.grant(accountant["user"]["id"], CIF, role="accountant", via_firm_cif=FIRM)
    events_before = len(await h.events())

    for who, code in ((member, "insufficient_role"), (accountant, "no_access_to_company")):
        hd = who["headers"]
        r = await h.client.post(f"/api/auth/anaf/connections/{c['id']}/revoke", headers=hd)
        assert r.status_code == 403 and r.json()["error"]["code"] == code, r.text
        r = await h.client.post("/api/auth/anaf/delegations", json={"company_cif": CIF}, headers=hd)
        assert r.status_code == 403 and r.json()["error"]["code"] == code, r.text
        r = await h.client.get(f"/api/auth/anaf/delegations?company_cif={CIF}", headers=hd)
        assert r.status_code == 403 and r.json()["error"]["code"] == code, r.text
        r = await h.client.post(f"/api/auth/anaf/delegations/{link['id']}/revoke", headers=hd)
        assert r.status_code == 403 and r.json()["error"]["code"] == code, r.text
        r = await h.client.post("/api/auth/anaf/authorizations", json={"company_cif": CIF}, headers=hd)
        assert r.status_code == 403 and r.json()["error"]["code"] == code, r.text
        # they still read: the connection is the company's ANAF data and both are verified for it
        items = (await h.client.get(f"/api/auth/anaf/connections?company_cif={CIF}", headers=hd)).json()["items"]
        assert [i["id"] for i in items] == [c["id"]]
        assert (await h.client.get(f"/api/auth/anaf/connections/{c['id']}", headers=hd)).status_code == 200

    # the refusal speaks Romanian by default and English on request
    r = await h.client.post(f"/api/auth/anaf/connections/{c['id']}/revoke", headers=member["headers"])
    assert "Rolul dumneavoastră (member)" in r.json()["error"]["message"]
    r = await h.client.post(f"/api/auth/anaf/connections/{c['id']}/revoke", headers={**member["headers"], **EN})
    assert "Your role (member)" in r.json()["error"]["message"]

    # nothing happened: the connection works, the link is open and alone, no event was published
    assert await _state(h, c["id"]) == "active"
    assert (await h.access_token(c["id"])).status_code == 200
    assert await _link_count(h) == 1
    listed = (await h.client.get(f"/api/auth/anaf/delegations?company_cif={CIF}", headers=owner["headers"])).json()
    assert [(i["id"], i["status"]) for i in listed["items"]] == [(link["id"], "open")]
    assert len(await h.events()) == events_before
    assert await h.events("auth.connection-revoked") == []

    # an administrator of the company itself may
    admin = await h.signup(name="Administrator")
    await h.grant(admin["user"]["id"], CIF, role="admin")
    r = await h.client.post(f"/api/auth/anaf/delegations/{link['id']}/revoke", headers=admin["headers"])
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    r = await h.client.post(f"/api/auth/anaf/connections/{c['id']}/revoke", headers=admin["headers"])
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    revoked = await h.events("auth.connection-revoked")
    assert [(e.connection_id, e.user_id) for _, e in revoked] == [(c["id"], admin["user"]["id"])]


async def test_unverified_owner_starts_authorization_and_delegates_but_reads_nothing(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness
    # a verified owner's connection exists for the company
    c, _owner = await h.authorized(CIF, name="Patron Verificat")
    # a second person registered the same CIF; nothing proves control yet
    newcomer = await h.signup(name="Al Doilea")
    await h.grant(newcomer["user"]["id"], CIF, role="owner", verified=False)
    hd = newcomer["headers"]
    assert (await h.client.get("/api/auth/anaf/connections", headers=hd)).json()["items"] == []
    for r in (await h.client.get(f"/api/auth/anaf/connections?company_cif={CIF}", headers=hd),
              await h.client.get(f"/api/auth/anaf/connections/{c['id']}", headers=hd),
              await h.client.post(f"/api/auth/anaf/connections/{c['id']}/revoke", headers=hd)):
        assert r.status_code == 403 and r.json()["error"]["code"] == "company_not_verified", r.text
        assert "nu este încă verificată" in r.json()["error"]["message"]
    assert await _state(h, c["id"]) == "active"
    assert await h.events("auth.connection-revoked") == []

    # what leads to verification is allowed
    link = await h.client.post("/api/auth/anaf/delegations", json={"company_cif": CIF}, headers=hd)
    assert link.status_code == 201, link.text
    h.secrets.add(link.json()["token"])
    assert (await h.client.get(f"/api/auth/anaf/delegations?company_cif={CIF}", headers=hd)).status_code == 200
    other = await h.signup(name="Fără Drepturi")
    await h.grant(other["user"]["id"], "2000023", role="owner", verified=False)
    r = await h.authorize(other["headers"], "2000023", certificate="acc")
    assert r.status_code == 200, r.text
    ev = [e for _, e in await h.events("auth.connection-authorized") if e.company_cif == "2000023"]
    assert len(ev) == 1 and isinstance(ev[0], ConnectionAuthorized)
    assert ev[0].user_id == other["user"]["id"] and ev[0].rights_confirmed is True


async def test_rights_not_confirmed_is_said_in_the_event(harness, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    h = harness

    async def anaf_down(access_token: str, cif: str) -> None:
        raise anaf_errors.AnafUnavailable("A aparut o eroare tehnica", endpoint="listaMesajeFactura", status=500)
    monkeypatch.setattr(h.deps.anaf, "check_rights", anaf_down)
    c, _user = await h.authorized(CIF)
    assert c["rights_checked"] is False
    (_, ev), = await h.events("auth.connection-authorized")
    assert ev.connection_id == c["id"] and ev.rights_confirmed is False


async def test_having_authorized_is_no_access_by_itself(harness) -> None:  # type: ignore[no-untyped-def]
    from spvhub_auth.adapters.orm import access_grants
    from spvhub_common.access import apply_access_changed
    from spvhub_common.events.portfolio import AccessChanged
    h = harness
    c, user = await h.authorized(CIF, name="Fost Angajat")
    async with h.runtime.uow() as uow:  # removed from the company
        await apply_access_changed(uow.session, access_grants, AccessChanged(
            cif=CIF, user_id=user["user"]["id"], role="owner", granted=False))
        await uow.commit()
    hd = user["headers"]
    assert (await h.client.get("/api/auth/anaf/connections", headers=hd)).json()["items"] == []
    assert (await h.client.get(f"/api/auth/anaf/connections/{c['id']}", headers=hd)).status_code == 404
    r = await h.client.post(f"/api/auth/anaf/connections/{c['id']}/revoke", headers=hd)
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_connection"
    assert await _state(h, c["id"]) == "active" and await h.events("auth.connection-revoked") == []


async def test_a_link_dies_with_its_creators_role(harness) -> None:  # type: ignore[no-untyped-def]
    """The connection a link produces belongs to the member who created it: once they no longer manage the company,
    the link opens nothing."""
    from spvhub_auth.adapters.orm import oauth_states
    h = harness
    owner = await h.signup(name="Fost Administrator")
    await h.grant(owner["user"]["id"], CIF, role="admin")
    link = (await h.client.post("/api/auth/anaf/delegations", json={"company_cif": CIF},
                                headers=owner["headers"])).json()
    h.secrets.add(link["token"])
    await h.grant(owner["user"]["id"], CIF, role="member")
    r = await h.client.post("/api/auth/anaf/delegations/open", json={"token": link["token"], "name": "Contabil"})
    assert r.status_code == 410 and r.json()["error"]["code"] == "delegation_link_revoked"
    assert r.json()["error"]["details"]["reason"] == "creator_no_longer_manager"
    async with h.runtime.uow() as uow:
        assert (await uow.session.execute(select(func.count()).select_from(oauth_states))).scalar() == 0
