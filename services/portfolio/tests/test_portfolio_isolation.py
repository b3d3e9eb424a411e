"""Isolation: for every endpoint, a user of firm A can neither read nor change firm B's companies or clients."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pfkit import CLIENTS_A, CLIENTS_B, FIRM_A, FIRM_B, Env, make_env
from spvhub_common.anaf.budget import BudgetLimits, PostgresBudget
from spvhub_common.clock import SystemClock
from spvhub_common.events.invitations import InvitationAccepted, InvitationClaimed

CA, CB = CLIENTS_A[0], CLIENTS_B[0]


@pytest.fixture
async def two_firms(fresh_database: str, topic_prefix: str, kafka_up: str) -> AsyncIterator[Env]:
    env = await make_env(fresh_database, topic_prefix, public_rate_limit="ignore")
    # registry calls are not what this test is about: a wide public window keeps it fast
    env.deps.efactura.budget = PostgresBudget(env.runtime.engine, BudgetLimits(public_per_second=100),  # type: ignore
                                              clock=SystemClock())
    firms = (("a", FIRM_A, CA, "conn-a", "firm_a"), ("b", FIRM_B, CB, "conn-b", "firm_b"))
    for user, firm, client, conn, cert in firms:
        await env.register(user, firm)
        await env.add_member(user, firm, f"{user}-member", "member")
        await env.api.patch(f"/api/portfolio/companies/{firm}", json={"provides_accounting_services": True},
                            headers=env.headers(user))
        await env.admin("/__admin/invoices", {"seller": firm, "buyer": client})
        await env.connect(conn, cert, firm, user)
        await env.handle(InvitationClaimed(invitation_id=f"inv-{user}", firm_cif=firm, client_cif=client,
                                           user_id=f"{user}-client"))
        await env.handle(InvitationAccepted(invitation_id=f"inv-{user}", firm_cif=firm, client_cif=client,
                                            user_id=f"{user}-client"))
        await env.api.post(f"/api/portfolio/companies/{firm}/candidates", content=f"{client}\n",
                           headers={**env.headers(user), "content-type": "text/csv"})
    try:
        yield env
    finally:
        await env.api.aclose()
        await env.emulator.aclose()
        await env.runtime.engine.dispose()


# (method, path template, body, content type); {cif} is firm B or its client, {other} the counterpart
ENDPOINTS: list[tuple[str, str, Any, str | None]] = [
    ("GET", "/api/portfolio/companies/{cif}", None, None),
    ("PATCH", "/api/portfolio/companies/{cif}", {"provides_accounting_services": False}, None),
    ("GET", "/api/portfolio/companies/{cif}/members", None, None),
    ("PUT", "/api/portfolio/companies/{cif}/members/a", {"role": "owner"}, None),
    ("DELETE", "/api/portfolio/companies/{cif}/members/{user}-member", None, None),
    ("POST", "/api/portfolio/companies/{cif}/discovery", None, None),
    ("POST", "/api/portfolio/companies/{cif}/candidates", f"{CLIENTS_A[9]}\n", "text/csv"),
    ("GET", "/api/portfolio/companies/{cif}/candidates", None, None),
    ("GET", "/api/portfolio/companies/{cif}/discovered", None, None),
    ("GET", "/api/portfolio/companies/{cif}/portfolio-status", None, None),
    ("GET", "/api/portfolio/companies/{cif}/collaborations", None, None),
    ("POST", "/api/portfolio/companies/{cif}/collaborations/{other}/end", {"reason": "takeover"}, None),
]


async def _snapshot(env: Env) -> dict[str, Any]:
    """Everything B's users see, to prove nothing changed."""
    out: dict[str, Any] = {}
    for user, cif in (("b", FIRM_B), ("b", CB), ("b-client", CB)):
        for suffix in ("", "/members", "/collaborations", "/candidates"):
            r = await env.api.get(f"/api/portfolio/companies/{cif}{suffix}", headers=env.headers(user))
            out[f"{user}{cif}{suffix}"] = r.json() if r.status_code == 200 else r.status_code
    out["list"] = (await env.api.get("/api/portfolio/companies", headers=env.headers("b"))).json()
    out["events"] = len(await env.events())
    return out


@pytest.mark.parametrize("method,path,body,ctype", ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
async def test_firm_a_cannot_touch_firm_b(two_firms: Env, method: str, path: str, body: Any,
                                          ctype: str | None) -> None:
    env = two_firms
    before = await _snapshot(env)
    for user in ("a", "a-member", "a-client"):
        for cif, other in ((FIRM_B, CB), (CB, FIRM_B)):
            if "members/{user}" in path and cif == CB:
                continue
            url = path.format(cif=cif, other=other, user="b")
            headers = env.headers(user)
            kw: dict[str, Any] = {}
            if ctype:
                kw["content"] = body
                headers["content-type"] = ctype
            elif body is not None:
                kw["json"] = body
            r = await env.api.request(method, url, headers=headers, **kw)
            assert r.status_code == 403, (user, method, url, r.status_code, r.text)
            assert r.json()["error"]["code"] == "no_access_to_company"
    assert await _snapshot(env) == before


async def test_company_list_shows_only_own_and_own_clients(two_firms: Env) -> None:
    env = two_firms
    for user, own, client in (("a", FIRM_A, CA), ("a-member", FIRM_A, CA), ("b", FIRM_B, CB)):
        r = await env.api.get("/api/portfolio/companies", headers=env.headers(user))
        assert {c["cif"]: c["relation"] for c in r.json()["companies"]} == {own: "own", client: "client"}


async def test_registering_b_cif_gives_a_nothing(two_firms: Env) -> None:
    env = two_firms
    for cif in (FIRM_B, CB):
        r = await env.api.post("/api/portfolio/companies", json={"cif": f"RO{cif}"}, headers=env.headers("a"))
        # a join request at most: registry data, nothing from ANAF, no say in the company
        assert r.status_code == 201 and r.json()["verification"] == "unverified" and r.json()["role"] == "member"
        for path in ("members", "discovered", "portfolio-status", "collaborations", "candidates"):
            r = await env.api.get(f"/api/portfolio/companies/{cif}/{path}", headers=env.headers("a"))
            assert r.status_code == 403 and r.json()["error"]["code"] == "company_not_verified", path
    grants = [d for _, d in await env.events("portfolio.access-changed") if d["user_id"] == "a" and d["granted"]
              and d["cif"] in (FIRM_B, CB)]
    assert grants and all(not g["verified"] and not g["can_file"] for g in grants)


async def test_a_cannot_end_b_collaboration_through_its_own_cif(two_firms: Env) -> None:
    env = two_firms
    r = await env.api.post(f"/api/portfolio/companies/{FIRM_A}/collaborations/{CB}/end", headers=env.headers("a"))
    assert r.status_code == 404
    assert (await env.api.get(f"/api/portfolio/companies/{CB}", headers=env.headers("b"))).status_code == 200


async def test_discovered_lists_are_per_firm(two_firms: Env) -> None:
    env = two_firms
    a = (await env.api.get(f"/api/portfolio/companies/{FIRM_A}/discovered", headers=env.headers("a"))).json()
    b = (await env.api.get(f"/api/portfolio/companies/{FIRM_B}/discovered", headers=env.headers("b"))).json()
    assert {c["cif"] for c in a["companies"]} == set(CLIENTS_A)
    assert {c["cif"] for c in b["companies"]} == set(CLIENTS_B)
