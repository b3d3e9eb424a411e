"""An accounting firm whose certificate's inventory names natural persons by CNP: they are its discovered clients
under their person keys, shown to the firm with the CNP masked (in the discovered list, the portfolio status and the
collaborations), and portfolio keeps the CNP sealed from the inventory so the person's entitlements carry it."""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pfkit
import pytest
from pfkit import CLIENTS_A, FIRM_A, Env, running_env
from spvhub_common.events.invitations import InvitationAccepted, InvitationClaimed, InvitationSent
from spvhub_common.ids import mask_cnp
from spvhub_portfolio.adapters.orm import companies, outbox
from sqlalchemy import func, select
from test_portfolio_cnp import CNP, OTHER_CNP, person_scenario


@pytest.fixture
async def penv(fresh_database: str, topic_prefix: str, kafka_up: str,
               monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    monkeypatch.setattr(pfkit, "scenario", person_scenario)
    async with running_env(fresh_database, topic_prefix) as e:
        yield e


async def _raw_outbox(env: Env) -> list[bytes]:
    async with env.runtime.uow() as uow:
        return [bytes(p) for p in (await uow.session.execute(select(outbox.c.payload))).scalars()]


async def _firm_with_persons(env: Env, *cnps: str) -> None:
    await env.register("fa", FIRM_A)
    await env.admin("/__admin/certificates/firm_a/rights", {"grant": list(cnps)})
    await env.admin("/__admin/invoices", {"seller": FIRM_A, "buyer": CLIENTS_A[0]})  # lists carry the inventory
    await env.connect("conn-a", "firm_a", FIRM_A, "fa")


async def _get(env: Env, path: str, user: str = "fa") -> Any:
    r = await env.api.get(path, headers=env.headers(user))
    assert r.status_code == 200, r.text
    assert CNP not in r.text and OTHER_CNP not in r.text
    return r.json()


async def test_a_cnp_in_the_firms_inventory_is_a_client_shown_masked_and_kept_sealed(penv: Env) -> None:
    env = penv
    key, other = env.deps.pii.key_of(CNP), env.deps.pii.key_of(OTHER_CNP)
    # one of the two people registered themselves, with their name, before the firm's discovery
    r = await env.api.post("/api/portfolio/companies", json={"cif": OTHER_CNP, "name": "Ionescu Maria"},
                           headers=env.headers("maria"))
    assert r.status_code == 201, r.text
    await _firm_with_persons(env, CNP, OTHER_CNP)

    [rights] = [d for _, d in await env.events("portfolio.rights-discovered")]
    assert {key, other} <= set(rights["cifs"]) and rights["mode"] == "inventory"
    assert rights["names"][key] == "Persoană fizică" and rights["names"][other] == "Ionescu Maria"
    # the CNP learnt from the inventory is kept sealed to its key, on a company announced with it
    async with env.runtime.uow() as uow:
        rows = {r.cif: r for r in await uow.session.execute(select(companies).where(companies.c.cif.in_([key, other])))}
        assert (await uow.session.execute(select(func.count()).select_from(companies).where(
            companies.c.cif.in_([CNP, OTHER_CNP])))).scalar() == 0
    assert env.deps.pii.unseal(rows[key].cnp_sealed, key) == CNP and rows[key].registered_by is None
    assert rows[other].name == "Ionescu Maria"  # the person's own registration is left as it was
    regs = [d for _, d in await env.events("portfolio.company-registered") if d["cif"] == key]
    assert len(regs) == 1 and env.deps.pii.unseal(regs[0]["cnp_sealed"], key) == CNP
    assert regs[0]["name"] == "Persoană fizică"

    disc = await _get(env, f"/api/portfolio/companies/{FIRM_A}/discovered")
    by = {c["cif"]: c for c in disc["companies"]}
    assert by[key]["kind"] == "cnp" and by[key]["tax_id"] == mask_cnp(CNP) and by[key]["name"] == "Persoană fizică"
    assert by[other]["tax_id"] == mask_cnp(OTHER_CNP) and by[other]["name"] == "Ionescu Maria"
    assert by[key]["registry_found"] is False and by[key]["invited"] is False and by[key]["address"] == ""
    assert by[CLIENTS_A[0]]["kind"] == "cif" and by[CLIENTS_A[0]]["tax_id"] == CLIENTS_A[0]
    st = await _get(env, f"/api/portfolio/companies/{FIRM_A}/portfolio-status")
    cl = {c["cif"]: c for c in st["clients"]}
    assert cl[key]["kind"] == "cnp" and cl[key]["tax_id"] == mask_cnp(CNP) and cl[key]["name"] == "Persoană fizică"
    assert cl[key]["blocked_by"] == ["not_invited"] and cl[CLIENTS_A[1]]["tax_id"] == CLIENTS_A[1]

    # the person registers with their name: it replaces the placeholder, for the firm too (the CNP stays masked)
    r = await env.api.post("/api/portfolio/companies", json={"cif": CNP, "name": "Stoica Radu"},
                           headers=env.headers("radu"))
    assert r.status_code == 201 and r.json()["cif"] == key and r.json()["name"] == "Stoica Radu", r.text
    assert r.json()["role"] == "owner" and r.json()["tax_id"] == mask_cnp(CNP)  # unverified: masked
    upd = [d for _, d in await env.events("portfolio.company-updated") if d["cif"] == key]
    assert [d["name"] for d in upd] == ["Stoica Radu"]
    disc = await _get(env, f"/api/portfolio/companies/{FIRM_A}/discovered")
    assert {c["cif"]: c for c in disc["companies"]}[key]["name"] == "Stoica Radu"
    # a second discovery announces nothing again
    r = await env.api.post(f"/api/portfolio/companies/{FIRM_A}/discovery", headers=env.headers("fa"))
    assert r.status_code == 200 and CNP not in r.text
    assert len([d for _, d in await env.events("portfolio.company-registered") if d["cif"] == key]) == 1
    # nothing written by the service holds a clear CNP, nor its birth-date digits
    raws = await _raw_outbox(env)
    assert not any(c.encode() in p or c[1:7].encode() in p for p in raws for c in (CNP, OTHER_CNP))


async def test_the_invited_person_client_carries_the_sealed_cnp_and_the_firm_sees_it_masked(penv: Env) -> None:
    env = penv
    key = env.deps.pii.key_of(CNP)
    await _firm_with_persons(env, CNP)
    now = env.deps.clock.now()
    await env.handle(InvitationSent(invitation_id="inv-p", firm_cif=FIRM_A, client_cif=key, email="pf@x.ro",
                                    name="Stoica", expires_at=now + timedelta(days=15)))
    disc = {c["cif"]: c for c in (await _get(env, f"/api/portfolio/companies/{FIRM_A}/discovered"))["companies"]}
    assert disc[key]["invited"] is True and disc[key]["invitation_status"] == "sent"
    await env.handle(InvitationClaimed(invitation_id="inv-p", firm_cif=FIRM_A, client_cif=key, user_id="pf"))
    # the link alone proves nothing about a natural person: whoever opened it is an unverified owner, shown the mask
    r = await _get(env, f"/api/portfolio/companies/{key}", user="pf")
    assert r["role"] == "owner" and r["verification"] == "unverified" and r["tax_id"] == mask_cnp(CNP)
    await env.handle(InvitationAccepted(invitation_id="inv-p", firm_cif=FIRM_A, client_cif=key, user_id="pf"))
    collabs = (await _get(env, f"/api/portfolio/companies/{FIRM_A}/collaborations"))["collaborations"]
    assert [c["status"] for c in collabs if c["client_cif"] == key] == ["pending"]  # an unverified "yes" is ignored
    # the person authorizes with their own certificate: ANAF asked by the CNP the firm's inventory taught portfolio
    await env.connect("conn-pf", "person", key, "pf")
    r = await env.api.get(f"/api/portfolio/companies/{key}", headers=env.headers("pf"))
    assert r.json()["verification"] == "verified" and r.json()["tax_id"] == CNP  # now a verified member: in clear
    await env.handle(InvitationAccepted(invitation_id="inv-p", firm_cif=FIRM_A, client_cif=key, user_id="pf"))
    # the entitlements name the person's own connection and the firm's, and carry the sealed CNP
    ent = [d for _, d in await env.events("portfolio.entitlements-changed") if d["cif"] == key]
    assert ent and [c["connection_id"] for c in ent[-1]["connections"]] == ["conn-pf", "conn-a"]
    assert all(env.deps.pii.unseal(e["cnp_sealed"], key) == CNP for e in ent)

    collabs = (await _get(env, f"/api/portfolio/companies/{FIRM_A}/collaborations"))["collaborations"]
    [c] = [c for c in collabs if c["client_cif"] == key]
    assert c["status"] == "active" and c["kind"] == "cnp" and c["tax_id"] == mask_cnp(CNP)
    assert c["counterpart_cif"] == key and c["counterpart_name"] == "Persoană fizică"
    st = await _get(env, f"/api/portfolio/companies/{FIRM_A}/portfolio-status")
    [cl] = [x for x in st["clients"] if x["cif"] == key]
    assert cl["tax_id"] == mask_cnp(CNP) and cl["collaboration_status"] == "active" and cl["blocked_by"] == []
    # the person's own side names the firm by its CIF
    mine = (await _get(env, f"/api/portfolio/companies/{key}/collaborations", user="pf"))["collaborations"]
    assert mine[0]["kind"] == "cif" and mine[0]["tax_id"] == FIRM_A and mine[0]["side"] == "client"
    # the firm's user reaches the client, still masked; a stranger reaches none of these lists
    r = await _get(env, f"/api/portfolio/companies/{key}")
    assert r["relation"] == "client" and r["tax_id"] == mask_cnp(CNP)
    before = len(await _raw_outbox(env))
    for path in (f"/api/portfolio/companies/{FIRM_A}/discovered", f"/api/portfolio/companies/{FIRM_A}/portfolio-status",
                 f"/api/portfolio/companies/{FIRM_A}/collaborations", f"/api/portfolio/companies/{key}/collaborations"):
        r = await env.api.get(path, headers=env.headers("stranger"))
        assert r.status_code == 403 and CNP not in r.text, r.text
    assert len(await _raw_outbox(env)) == before


async def test_a_cnp_failing_its_control_digit_in_an_inventory_is_nobody(penv: Env) -> None:
    env = penv
    bad = CNP[:-1] + str((int(CNP[-1]) + 1) % 10)
    await _firm_with_persons(env, bad)
    [rights] = [d for _, d in await env.events("portfolio.rights-discovered")]
    assert not [c for c in rights["cifs"] if c.startswith("PF")] and bad not in rights["cifs"]
    assert [d for _, d in await env.events("portfolio.company-registered") if d["cif"].startswith("PF")] == []



async def test_a_person_known_only_by_key_learns_its_cnp_from_the_firms_inventory(penv: Env) -> None:
    """A person key the platform met first without its CNP (an invitation's client, before this firm's certificate
    was discovered) gets the CNP from the inventory, sealed, and its entitlements carry it."""
    env = penv
    key = env.deps.pii.key_of(CNP)
    await env.register("fa", FIRM_A)
    now = env.deps.clock.now()
    await env.handle(InvitationSent(invitation_id="inv-q", firm_cif=FIRM_A, client_cif=key, email="pf@x.ro",
                                    name="Stoica", expires_at=now + timedelta(days=15)))
    await env.handle(InvitationClaimed(invitation_id="inv-q", firm_cif=FIRM_A, client_cif=key, user_id="pf"))
    await env.verify("pf", key)
    await env.handle(InvitationAccepted(invitation_id="inv-q", firm_cif=FIRM_A, client_cif=key, user_id="pf"))
    async with env.runtime.uow() as uow:
        assert (await uow.session.execute(select(companies.c.cnp_sealed).where(companies.c.cif == key))).scalar() \
            is None
    assert [d for _, d in await env.events("portfolio.entitlements-changed") if d["cif"] == key] == []
    await env.admin("/__admin/certificates/firm_a/rights", {"grant": [CNP]})
    await env.admin("/__admin/invoices", {"seller": FIRM_A, "buyer": CLIENTS_A[0]})
    await env.connect("conn-a", "firm_a", FIRM_A, "fa")
    async with env.runtime.uow() as uow:
        sealed = (await uow.session.execute(select(companies.c.cnp_sealed).where(companies.c.cif == key))).scalar()
    assert sealed and env.deps.pii.unseal(sealed, key) == CNP
    ent = [d for _, d in await env.events("portfolio.entitlements-changed") if d["cif"] == key]
    assert ent and [c["connection_id"] for c in ent[-1]["connections"]] == ["conn-a"]
    assert env.deps.pii.unseal(ent[-1]["cnp_sealed"], key) == CNP
    # no second company-registered for a company that exists
    assert [d for _, d in await env.events("portfolio.company-registered") if d["cif"] == key and d["cnp_sealed"]] \
        == []
    assert not any(CNP.encode() in p for p in await _raw_outbox(env))
