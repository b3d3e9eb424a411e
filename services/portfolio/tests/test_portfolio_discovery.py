"""Discovery of a firm's portfolio from its certificate, in both emulator modes (rights inventory in the list
answer's `cui`; echo + probing candidates), registry enrichment, and the re-check noticing rights gained/lost."""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pfkit import CLIENTS_A, FIRM_A, FIRM_B, OTHERS, Env, running_env
from spvhub_portfolio import jobs

EXPECTED = sorted([FIRM_A, *CLIENTS_A], key=int)


@pytest.fixture
async def echo_env(fresh_database: str, topic_prefix: str, kafka_up: str) -> AsyncIterator[Env]:
    async with running_env(fresh_database, topic_prefix, list_cui_field="echo") as e:
        yield e


async def _list_calls(env: Env) -> int:
    r = await env.emulator.get("/__admin/counters")
    return sum(n for k, n in r.json()["endpoints"].items() if "listaMesajeFactura" in k)


async def _discovered(env: Env, user: str = "fa") -> dict:
    r = await env.api.get(f"/api/portfolio/companies/{FIRM_A}/discovered", headers=env.headers(user))
    assert r.status_code == 200, r.text
    return r.json()


async def test_inventory_mode_finds_exactly_the_40(env: Env) -> None:
    await env.register("fa", FIRM_A)
    # the holder's inbox must not be empty for ANAF to show the inventory
    await env.admin("/__admin/invoices", {"seller": FIRM_A, "buyer": CLIENTS_A[0]})
    await env.connect("conn-a", "firm_a", FIRM_A, "fa")
    evs = [d for _, d in await env.events("portfolio.rights-discovered")]
    assert len(evs) == 1
    ev = evs[0]
    assert ev["cifs"] == EXPECTED and ev["gained"] == EXPECTED and ev["lost"] == []
    assert ev["mode"] == "inventory" and ev["complete"] is True and ev["holder_cif"] == FIRM_A
    assert ev["connection_id"] == "conn-a" and "efactura" in ev["services"]
    assert sorted(ev["names"]) == EXPECTED and all(n.startswith("FIRMA ") for n in ev["names"].values())
    assert await _list_calls(env) == 1  # one call reveals the whole portfolio
    disc = await _discovered(env)
    assert disc["count"] == 39 and sorted(c["cif"] for c in disc["companies"]) == sorted(CLIENTS_A)
    for c in disc["companies"]:
        assert c["registry_found"] and c["name"].startswith("FIRMA ") and c["address"] and c["trade_register_no"]
        assert c["invited"] is False and c["collaboration_status"] is None
    # on demand, through the API: same answer, nothing gained or lost
    r = await env.api.post(f"/api/portfolio/companies/{FIRM_A}/discovery", headers=env.headers("fa"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 40 and body["cifs"] == EXPECTED
    assert body["connections"][0]["gained"] == [] and body["connections"][0]["lost"] == []


async def test_echo_mode_probes_candidates_and_finds_exactly_the_40(echo_env: Env) -> None:
    env = echo_env
    await env.register("fa", FIRM_A)
    # companies known to the platform are candidates too
    for i, cif in enumerate([*CLIENTS_A[35:], FIRM_B, OTHERS[0]]):
        await env.register(f"other{i}", cif)
    csv = "Denumire,CUI\n" + "".join(f"Client {i},RO{c}\n" for i, c in enumerate([*CLIENTS_A[:35], *OTHERS[1:]]))
    r = await env.api.post(f"/api/portfolio/companies/{FIRM_A}/candidates", content=csv,
                           headers={**env.headers("fa"), "content-type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json()["added"] == 40
    await env.admin("/__admin/invoices", {"seller": FIRM_A, "buyer": CLIENTS_A[0]})
    await env.connect("conn-a", "firm_a", FIRM_A, "fa")
    ev = [d for _, d in await env.events("portfolio.rights-discovered")][-1]
    assert ev["mode"] == "probe" and ev["complete"] is True
    assert ev["cifs"] == EXPECTED and ev["gained"] == EXPECTED
    # one call for the holder + one per candidate (39 clients + 6 others + FIRM_B)
    assert await _list_calls(env) == 1 + 39 + len(OTHERS) + 1
    disc = await _discovered(env)
    assert sorted(c["cif"] for c in disc["companies"]) == sorted(CLIENTS_A)
    assert all(c["name"] and c["registry_found"] for c in disc["companies"])


async def _recheck_notices_changes(env: Env) -> None:
    removed, added = CLIENTS_A[:3], OTHERS[1:3]
    # nothing is due before a day has passed
    assert await jobs.recheck_rights(env.runtime, env.deps) == []
    await env.admin("/__admin/certificates/firm_a/rights", {"grant": added, "remove": removed})
    await env.admin("/__admin/clock", {"advance_days": 1, "advance_seconds": 60})
    await env.admin("/__admin/invoices", {"seller": FIRM_A, "buyer": CLIENTS_A[5]})  # keep the inbox non-empty
    results = await jobs.recheck_rights(env.runtime, env.deps)
    assert len(results) == 1
    res = results[0]
    assert res.gained == sorted(added, key=int) and res.lost == sorted(removed, key=int)
    ev = [d for _, d in await env.events("portfolio.rights-discovered")][-1]
    assert ev["gained"] == sorted(added, key=int) and ev["lost"] == sorted(removed, key=int)
    assert len(ev["cifs"]) == 40 - 3 + 2
    lost = [d for _, d in await env.events("portfolio.access-lost")]
    # none of these companies collaborates with the firm, so nobody synced them through this connection and
    # nobody is told anything (their own people, if any, never depended on it)
    assert lost == []
    assert [d for _, d in await env.events("portfolio.entitlements-changed") if d["cif"] in removed] == []
    disc = {c["cif"] for c in (await _discovered(env))["companies"]}
    assert disc == (set(CLIENTS_A) - set(removed)) | set(added)
    # a second re-check the same day changes nothing and publishes nothing
    n = len(await env.events("portfolio.rights-discovered"))
    assert await jobs.recheck_rights(env.runtime, env.deps) == []
    assert len(await env.events("portfolio.rights-discovered")) == n


async def test_recheck_inventory_mode(env: Env) -> None:
    await env.register("fa", FIRM_A)
    await env.admin("/__admin/invoices", {"seller": FIRM_A, "buyer": CLIENTS_A[0]})
    await env.connect("conn-a", "firm_a", FIRM_A, "fa")
    await _recheck_notices_changes(env)


async def test_recheck_echo_mode(echo_env: Env) -> None:
    env = echo_env
    await env.register("fa", FIRM_A)
    csv = "\n".join([*CLIENTS_A, *OTHERS])
    r = await env.api.post(f"/api/portfolio/companies/{FIRM_A}/candidates", content=csv,
                           headers={**env.headers("fa"), "content-type": "text/csv"})
    assert r.status_code == 200, r.text
    await env.connect("conn-a", "firm_a", FIRM_A, "fa")
    assert [d for _, d in await env.events("portfolio.rights-discovered")][-1]["cifs"] == EXPECTED
    await _recheck_notices_changes(env)


async def test_bad_csv_is_refused_whole(env: Env) -> None:
    await env.register("fa", FIRM_A)
    r = await env.api.post(f"/api/portfolio/companies/{FIRM_A}/candidates", content=f"{CLIENTS_A[0]}\n1234\n",
                           headers={**env.headers("fa"), "content-type": "text/csv"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_candidates"
    assert r.json()["error"]["details"]["rows"][0]["line"] == 2
    r = await env.api.get(f"/api/portfolio/companies/{FIRM_A}/candidates", headers=env.headers("fa"))
    assert r.json()["candidates"] == []


async def test_discovery_without_authorization_says_so(env: Env) -> None:
    await env.register("fa", FIRM_A)
    r = await env.api.post(f"/api/portfolio/companies/{FIRM_A}/discovery", headers=env.headers("fa"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "no_active_efactura_authorization"


async def test_reauthorization_required_is_recorded(env: Env) -> None:
    await env.register("fa", FIRM_A)
    await env.admin("/__admin/invoices", {"seller": FIRM_A, "buyer": CLIENTS_A[0]})
    await env.connect("conn-a", "firm_a", FIRM_A, "fa")
    env.connections["conn-a"]["status"] = "reauthorization_required"
    r = await env.api.post(f"/api/portfolio/companies/{FIRM_A}/discovery", headers=env.headers("fa"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "reauthorization_required"
    st = (await env.api.get(f"/api/portfolio/companies/{FIRM_A}/portfolio-status", headers=env.headers("fa"))).json()
    assert st["efactura_authorization"]["status"] == "reauthorization_required"
    assert "no_active_efactura_authorization" in [b["code"] for b in st["blockers"]]


async def test_inventory_mode_with_an_empty_holder_inbox_uses_the_first_inventory_a_probe_shows(env: Env) -> None:
    await env.register("fa", FIRM_A)
    # the holder's own inbox is empty (no `cui` in the answer); client 10 has a message
    await env.admin("/__admin/invoices", {"seller": CLIENTS_A[10], "buyer": OTHERS[0]})
    csv = "\n".join(CLIENTS_A)
    r = await env.api.post(f"/api/portfolio/companies/{FIRM_A}/candidates", content=csv,
                           headers={**env.headers("fa"), "content-type": "text/csv"})
    assert r.status_code == 200
    await env.connect("conn-a", "firm_a", FIRM_A, "fa")
    ev = [d for _, d in await env.events("portfolio.rights-discovered")][-1]
    assert ev["mode"] == "inventory" and ev["cifs"] == EXPECTED
    assert await _list_calls(env) < 1 + 39  # stopped probing once the inventory was known
