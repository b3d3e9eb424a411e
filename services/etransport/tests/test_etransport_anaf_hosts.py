"""etransport reaches ANAF on the documented host: built with production settings (no emulator) and a recording
transport, `info` and `lista` go to api.anaf.ro/prod/ETRANSPORT/ws/v1/..."""
from __future__ import annotations

from datetime import UTC, datetime

import httpx
from spvhub_common.anaf import UnlimitedBudget
from spvhub_common.clock import ManualClock
from spvhub_etransport.bootstrap import anaf_api
from spvhub_etransport.settings import Settings


async def test_production_settings_send_each_call_to_its_documented_host() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/info"):
            return httpx.Response(200, json=[{"uit": "1A2B3C4D5E6F7G8H", "cod_decl": 12000012}])
        return httpx.Response(200, json={"mesaje": [{"uit": "1A2B3C4D5E6F7G8H", "cod_decl": "12000012"}],
                                         "serial": "x", "cui": "31000019", "titlu": "Lista"})

    settings = Settings(env="test", anaf_env="prod", anaf_emulator_url="")
    clock = ManualClock(datetime(2026, 3, 10, 10, 0, tzinfo=UTC))
    api = anaf_api(settings, UnlimitedBudget(), clock, httpx.MockTransport(record))  # as build()
    try:
        assert len(await api.info("tok", "31000019")) == 1
        assert len(await api.lista("tok", "31000019", 5)) == 1
    finally:
        await api.client.aclose()
    assert [f"{r.method} {r.url.copy_with(query=None)}" for r in seen] == [
        "GET https://api.anaf.ro/prod/ETRANSPORT/ws/v1/info",
        "GET https://api.anaf.ro/prod/ETRANSPORT/ws/v1/lista/5/31000019"]
    assert all(r.headers["authorization"] == "Bearer tok" for r in seen)
