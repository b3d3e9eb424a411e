"""auth reaches ANAF on the documented hosts: built with production settings (no emulator) and a recording
transport, its authorize URL and token calls go to logincert.anaf.ro and its rights check to api.anaf.ro."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
from spvhub_auth.bootstrap import anaf_gateway
from spvhub_auth.settings import Settings
from spvhub_common.anaf import UnlimitedBudget

TOKENS = {"access_token": "a1.b1.c1", "refresh_token": "d1.e1.f1", "token_type": "Bearer", "expires_in": 7776000}


async def test_production_settings_send_each_call_to_its_documented_host() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json=TOKENS)
        return httpx.Response(200, json={"eroare": "Nu exista mesaje in ultimele 1 zile", "titlu": "Lista Mesaje"})

    settings = Settings(env="test", anaf_env="prod", anaf_emulator_url="", public_base_url="https://spvhub.example.ro")
    gateway = anaf_gateway(settings, UnlimitedBudget(), httpx.MockTransport(answer))  # as the composition root does
    try:
        url = gateway.authorize_url("state-1")
        await gateway.exchange_code("code-1")
        await gateway.refresh("d0.e0.f0")
        await gateway.check_rights("a1.b1.c1", "1000017")
    finally:
        await gateway.aclose()
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://logincert.anaf.ro/anaf-oauth2/v1/authorize"
    assert parse_qs(parts.query)["redirect_uri"] == ["https://spvhub.example.ro/anaf/callback"]  # spvhub web
    assert [f"{r.method} {r.url.copy_with(query=None)}" for r in seen] == [
        "POST https://logincert.anaf.ro/anaf-oauth2/v1/token",
        "POST https://logincert.anaf.ro/anaf-oauth2/v1/token",
        "GET https://api.anaf.ro/prod/FCTEL/rest/listaMesajeFactura"]
    assert seen[0].headers["authorization"].startswith("Basic ")  # the application's credentials, on logincert
    assert seen[2].headers["authorization"] == "Bearer a1.b1.c1"
