"""Collaborations firm <-> client from invitation events: claimed (client company added to the new account,
pending), accepted (active, firm users reach the client), ended (access revoked); the firm's company list and
the troubleshooting view."""
from __future__ import annotations

from pfkit import CLIENTS_A, FIRM_A, Env
from spvhub_common.events.invitations import InvitationAccepted, InvitationClaimed, InvitationSent

CLIENT = CLIENTS_A[4]


async def _firm_with_two_users(env: Env) -> None:
    await env.register("fa", FIRM_A)
    r = await env.add_member("fa", FIRM_A, "fa2", "member")
    assert r.status_code == 201


async def _claim_and_accept(env: Env) -> None:
    """The firm's certificate covers the client, so the claimant becomes its verified owner and may accept."""
    from datetime import timedelta
    if "conn-a" not in env.connections:
        await env.admin("/__admin/invoices", {"seller": FIRM_A, "buyer": CLIENTS_A[0]})  # lists carry the inventory
        await env.connect("conn-a", "firm_a", FIRM_A, "fa")
    now = env.deps.clock.now()
    await env.handle(InvitationSent(invitation_id="inv1", firm_cif=FIRM_A, client_cif=CLIENT, email="c@x.ro",
                                    name="Client Rep", expires_at=now + timedelta(days=15)))
    await env.handle(InvitationClaimed(invitation_id="inv1", firm_cif=FIRM_A, client_cif=CLIENT, user_id="cl"))
    await env.handle(InvitationAccepted(invitation_id="inv1", firm_cif=FIRM_A, client_cif=CLIENT, user_id="cl"))


async def test_claim_adds_the_client_company_at_once_and_collaboration_is_pending(env: Env) -> None:
    await _firm_with_two_users(env)
    await env.handle(InvitationClaimed(invitation_id="inv1", firm_cif=FIRM_A, client_cif=CLIENT, user_id="cl"))
    r = await env.api.get("/api/portfolio/companies", headers=env.headers("cl"))
    [c] = r.json()["companies"]
    assert c["cif"] == CLIENT and c["relation"] == "own" and c["role"] == "owner"
    assert c["name"].startswith("FIRMA ") and c["address"] and c["trade_register_no"]  # pre-filled from registry
    # the firm sees the client as pending, without access to its data yet
    r = await env.api.get("/api/portfolio/companies", headers=env.headers("fa2"))
    marks = {c["cif"]: (c["relation"], c.get("collaboration_status")) for c in r.json()["companies"]}
    assert marks == {FIRM_A: ("own", None), CLIENT: ("client", "pending")}
    assert (await env.api.get(f"/api/portfolio/companies/{CLIENT}", headers=env.headers("fa2"))).status_code == 403
    st = (await env.api.get(f"/api/portfolio/companies/{FIRM_A}/portfolio-status", headers=env.headers("fa"))).json()
    codes = [b["code"] for b in st["blockers"]]
    assert codes == ["accounting_services_flag_missing", "no_active_efactura_authorization",
                     "client_acceptance_missing"]
    assert st["ready"] is False
    assert [c["blocked_by"] for c in st["clients"] if c["cif"] == CLIENT] == [["client_acceptance_missing"]]
    reg = [d for _, d in await env.events("portfolio.company-registered")]
    assert [d["cif"] for d in reg] == [FIRM_A, CLIENT]


async def test_accept_gives_firm_users_access_and_end_takes_it_away(env: Env) -> None:
    await _firm_with_two_users(env)
    await _claim_and_accept(env)
    evs = await env.events()
    started = [d for t, d in evs if t == "portfolio.collaboration-started"]
    assert started == [{"firm_cif": FIRM_A, "client_cif": CLIENT, "may_file": False, "accepted_by": "cl"}]
    grants = sorted((d["user_id"], d["role"], d["via_firm_cif"]) for t, d in evs
                    if t == "portfolio.access-changed" and d["cif"] == CLIENT and d["granted"])
    assert grants == [("cl", "owner", None), ("fa", "accountant", FIRM_A), ("fa2", "accountant", FIRM_A)]
    for user in ("fa", "fa2"):
        r = await env.api.get(f"/api/portfolio/companies/{CLIENT}", headers=env.headers(user))
        assert r.status_code == 200 and r.json()["relation"] == "client" and r.json()["via_firm_cif"] == FIRM_A
    r = await env.api.get("/api/portfolio/companies", headers=env.headers("fa"))
    marks = {c["cif"]: (c["relation"], c.get("collaboration_status")) for c in r.json()["companies"]}
    assert marks == {FIRM_A: ("own", None), CLIENT: ("client", "active")}
    # a member who joins the firm later reaches its active clients too
    await env.add_member("fa", FIRM_A, "fa3", "member")
    assert (await env.api.get(f"/api/portfolio/companies/{CLIENT}", headers=env.headers("fa3"))).status_code == 200
    # a firm user cannot administer the client
    r = await env.api.patch(f"/api/portfolio/companies/{CLIENT}", json={"provides_accounting_services": True},
                            headers=env.headers("fa"))
    assert r.status_code == 403
    # the client ends the collaboration
    r = await env.api.post(f"/api/portfolio/companies/{CLIENT}/collaborations/{FIRM_A}/end", json={"reason": "x"},
                           headers=env.headers("cl"))
    assert r.status_code == 200 and r.json()["status"] == "ended"
    for user in ("fa", "fa2", "fa3"):
        assert (await env.api.get(f"/api/portfolio/companies/{CLIENT}", headers=env.headers(user))).status_code == 403
    evs = await env.events()
    revokes = sorted(d["user_id"] for t, d in evs if t == "portfolio.access-changed" and d["cif"] == CLIENT
                     and not d["granted"])
    assert revokes == ["fa", "fa2", "fa3"]
    assert [d for t, d in evs if t == "portfolio.collaboration-ended"] == [
        {"firm_cif": FIRM_A, "client_cif": CLIENT, "reason": "x"}]
    r = await env.api.get("/api/portfolio/companies", headers=env.headers("fa"))
    assert [c["cif"] for c in r.json()["companies"]] == [FIRM_A]
    # the client keeps its own access
    assert (await env.api.get(f"/api/portfolio/companies/{CLIENT}", headers=env.headers("cl"))).status_code == 200


async def test_firm_side_can_end_and_listing_shows_both_sides(env: Env) -> None:
    await _firm_with_two_users(env)
    await _claim_and_accept(env)
    r = await env.api.get(f"/api/portfolio/companies/{FIRM_A}/collaborations", headers=env.headers("fa"))
    [c] = r.json()["collaborations"]
    assert c["side"] == "firm" and c["counterpart_cif"] == CLIENT and c["status"] == "active"
    r = await env.api.get(f"/api/portfolio/companies/{CLIENT}/collaborations", headers=env.headers("cl"))
    assert r.json()["collaborations"][0]["side"] == "client"
    # a plain member of the firm cannot end it; an owner can
    r = await env.api.post(f"/api/portfolio/companies/{FIRM_A}/collaborations/{CLIENT}/end", headers=env.headers("fa2"))
    assert r.status_code == 403
    r = await env.api.post(f"/api/portfolio/companies/{FIRM_A}/collaborations/{CLIENT}/end", headers=env.headers("fa"))
    assert r.status_code == 200 and r.json()["end_reason"] == "ended_by_firm"
    r = await env.api.post(f"/api/portfolio/companies/{FIRM_A}/collaborations/{CLIENT}/end", headers=env.headers("fa"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "collaboration_not_found"
    assert (await env.api.get(f"/api/portfolio/companies/{CLIENT}", headers=env.headers("fa2"))).status_code == 403


async def test_portfolio_status_ready_with_flag_authorization_and_acceptance(env: Env) -> None:
    await _firm_with_two_users(env)
    await env.api.patch(f"/api/portfolio/companies/{FIRM_A}", json={"provides_accounting_services": True},
                        headers=env.headers("fa"))
    await env.admin("/__admin/invoices", {"seller": FIRM_A, "buyer": CLIENTS_A[0]})
    await env.connect("conn-a", "firm_a", FIRM_A, "fa")
    await _claim_and_accept(env)
    st = (await env.api.get(f"/api/portfolio/companies/{FIRM_A}/portfolio-status", headers=env.headers("fa2"))).json()
    assert st["ready"] is True and st["provides_accounting_services"] is True
    assert st["efactura_authorization"]["status"] == "active"
    assert st["efactura_authorization"]["discovered_count"] == 40
    client = next(c for c in st["clients"] if c["cif"] == CLIENT)
    assert client["collaboration_status"] == "active" and client["spv_rights"] and client["blocked_by"] == []
    others = [c for c in st["clients"] if c["cif"] != CLIENT]
    assert len(others) == 38 and all(c["blocked_by"] == ["not_invited"] for c in others)
    disc = (await env.api.get(f"/api/portfolio/companies/{FIRM_A}/discovered", headers=env.headers("fa"))).json()
    mark = next(c for c in disc["companies"] if c["cif"] == CLIENT)
    assert mark["collaborating"] is True and mark["invitation_status"] == "accepted"


async def test_declined_invitation_ends_the_pending_collaboration(env: Env) -> None:
    from spvhub_common.events.invitations import InvitationDeclined
    await _firm_with_two_users(env)
    await env.handle(InvitationClaimed(invitation_id="inv1", firm_cif=FIRM_A, client_cif=CLIENT, user_id="cl"))
    await env.handle(InvitationDeclined(invitation_id="inv1", firm_cif=FIRM_A, client_cif=CLIENT, user_id="cl"))
    r = await env.api.get(f"/api/portfolio/companies/{FIRM_A}/collaborations", headers=env.headers("fa"))
    assert [c["status"] for c in r.json()["collaborations"]] == ["ended"]
    ended = [d for _, d in await env.events("portfolio.collaboration-ended")]
    assert ended == [{"firm_cif": FIRM_A, "client_cif": CLIENT, "reason": "invitation_declined"}]
    # the client keeps its company
    assert (await env.api.get(f"/api/portfolio/companies/{CLIENT}", headers=env.headers("cl"))).status_code == 200


async def test_claim_of_a_company_with_a_verified_owner_is_only_a_join_request(env: Env) -> None:
    await env.register("real-owner", CLIENT)
    await _firm_with_two_users(env)
    await env.admin("/__admin/invoices", {"seller": FIRM_A, "buyer": CLIENTS_A[0]})
    await env.connect("conn-a", "firm_a", FIRM_A, "fa")  # the firm's certificate even covers the client
    await env.handle(InvitationClaimed(invitation_id="inv1", firm_cif=FIRM_A, client_cif=CLIENT, user_id="stranger"))
    r = await env.api.get(f"/api/portfolio/companies/{CLIENT}", headers=env.headers("stranger"))
    assert r.status_code == 200 and r.json()["verification"] == "unverified"  # registry data only
    for path in ("members", "collaborations/x/end"):
        r = await env.api.get(f"/api/portfolio/companies/{CLIENT}/members", headers=env.headers("stranger"))
        assert r.status_code == 403 and r.json()["error"]["code"] == "company_not_verified", path
    # the stranger cannot accept for the client: the collaboration stays pending
    await env.handle(InvitationAccepted(invitation_id="inv1", firm_cif=FIRM_A, client_cif=CLIENT, user_id="stranger"))
    r = await env.api.get(f"/api/portfolio/companies/{CLIENT}/collaborations", headers=env.headers("real-owner"))
    assert [c["status"] for c in r.json()["collaborations"]] == ["pending"]
    assert [d for _, d in await env.events("portfolio.collaboration-started")] == []
    # the owner sees the request and is told about it
    r = await env.api.get(f"/api/portfolio/companies/{CLIENT}/members", headers=env.headers("real-owner"))
    assert {m["user_id"]: m["status"] for m in r.json()["items"]} == {"real-owner": "active",
                                                                        "stranger": "pending_approval"}
    [req] = [d for _, d in await env.events("portfolio.join-requested")]
    assert req["user_id"] == "stranger" and req["notify_user_ids"] == ["real-owner"] and req["via"] == "invitation"
    grants = {d["user_id"]: d["verified"] for _, d in await env.events("portfolio.access-changed")
              if d["cif"] == CLIENT and d["granted"]}
    assert grants == {"real-owner": True, "stranger": False}
    # the owner approves: the stranger becomes a verified member
    r = await env.api.put(f"/api/portfolio/companies/{CLIENT}/members/stranger", json={"role": "member"},
                          headers=env.headers("real-owner"))
    assert r.status_code == 200
    r = await env.api.get(f"/api/portfolio/companies/{CLIENT}/members", headers=env.headers("stranger"))
    assert r.status_code == 200


async def test_revoked_connection_loses_every_right(env: Env) -> None:
    from spvhub_common.events.auth import ConnectionRevoked
    await env.register("fa", FIRM_A)
    await env.admin("/__admin/invoices", {"seller": FIRM_A, "buyer": CLIENTS_A[0]})
    await env.connect("conn-a", "firm_a", FIRM_A, "fa")
    await env.handle(ConnectionRevoked(connection_id="conn-a", company_cif=FIRM_A, user_id="fa", reason="revoked"))
    ev = [d for _, d in await env.events("portfolio.rights-discovered")][-1]
    assert ev["cifs"] == [] and len(ev["lost"]) == 40
    # only the holder's own sync stops (no client collaborates): one notice, to its own people
    lost = [d for _, d in await env.events("portfolio.access-lost")]
    assert [(d["cif"], d["reason"], d["notify_user_ids"]) for d in lost] == [(FIRM_A, "connection_revoked", ["fa"])]
    ent = [d for _, d in await env.events("portfolio.entitlements-changed")]
    assert [(d["cif"], len(d["connections"])) for d in ent] == [(FIRM_A, 1), (FIRM_A, 0)]
    disc = (await env.api.get(f"/api/portfolio/companies/{FIRM_A}/discovered", headers=env.headers("fa"))).json()
    assert disc["count"] == 0
    st = (await env.api.get(f"/api/portfolio/companies/{FIRM_A}/portfolio-status", headers=env.headers("fa"))).json()
    assert st["efactura_authorization"]["status"] == "revoked"
