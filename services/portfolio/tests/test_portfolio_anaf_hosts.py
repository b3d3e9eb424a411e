"""Portfolio reaches each ANAF interface on its own host: built with production settings (no emulator) and a
recording transport, every URL goes to the documented host and path; and against an emulator that serves each
host family only under its own prefix, a registration and a discovery work (a wrong family would get a 404)."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from pfkit import CLIENTS_A, FIRM_A, Env, running_env
from spvhub_common.anaf import UnlimitedBudget
from spvhub_portfolio.bootstrap import anaf_adapter
from spvhub_portfolio.settings import Settings


async def test_production_settings_send_each_call_to_its_documented_host() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/tva"):
            cuis = [item["cui"] for item in json.loads(request.content)]
            return httpx.Response(200, json={"cod": 200, "message": "SUCCESS", "found": [], "notFound": cuis})
        return httpx.Response(200, json={"eroare": "Nu exista mesaje in ultimele 1 zile", "titlu": "Lista Mesaje"})

    settings = Settings(env="test", anaf_env="prod", anaf_emulator_url="")  # production's ANAF block: no emulator
    assert settings.anaf_bases == {"oauth": "https://logincert.anaf.ro", "api": "https://api.anaf.ro",
                                   "public": "https://webservicesp.anaf.ro", "spv": "https://webserviced.anaf.ro"}
    anaf = anaf_adapter(settings, UnlimitedBudget(), httpx.MockTransport(answer))  # as the composition root does
    try:
        records = await anaf.lookup([FIRM_A])
        probe = await anaf.list_messages("access-token", FIRM_A, 1)
    finally:
        await anaf.aclose()
    assert records[FIRM_A].found is False and probe.has_rights is True
    urls = [str(r.url.copy_with(query=None)) for r in seen]
    assert urls == ["https://webservicesp.anaf.ro/api/PlatitorTvaRest/v9/tva",
                    "https://api.anaf.ro/prod/FCTEL/rest/listaMesajeFactura"]
    assert [r.method for r in seen] == ["POST", "GET"]
    assert "authorization" not in seen[0].headers  # the public registry gets no token
    assert seen[1].headers["authorization"] == "Bearer access-token"


@pytest.fixture
async def family_env(fresh_database: str, topic_prefix: str, kafka_up: str) -> AsyncIterator[Env]:
    async with running_env(fresh_database, topic_prefix, families=True) as e:
        yield e


async def test_registration_and_discovery_with_one_base_per_host_family(family_env: Env) -> None:
    env = family_env
    assert env.settings.anaf_bases["public"] == "http://emulator/webservicesp.anaf.ro"
    company = await env.register("fa", FIRM_A)  # the VAT registry, on the public host
    assert company["name"] == "FIRMA 00 SRL" and company["trade_register_no"] == "J12/1000/2015"
    await env.admin("/__admin/invoices", {"seller": FIRM_A, "buyer": CLIENTS_A[0]})
    await env.connect("conn-a", "firm_a", FIRM_A, "fa")  # the list call, on the API host
    evs = [d for _, d in await env.events("portfolio.rights-discovered")]
    assert len(evs) == 1 and evs[0]["complete"] is True
    assert sorted(evs[0]["cifs"], key=int) == sorted([FIRM_A, *CLIENTS_A], key=int)
    assert env.emulator_app.refused == []
