"""The client's host families and its one transient-retry policy.

- Every operation goes to the documented host and path with the production configuration (anaf-api.md §0), and
  to the family's own base when the four bases differ.
- Transient faults are retried for calls safe to repeat; never a limit, never an upload or a token call once the
  request may have left (only when the connection was never made).
- A daily cap is read from ANAF's own text (§11.16).
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr
from spvhub_common.anaf import (
    AnafClient,
    AnafConfig,
    AnafUnavailable,
    BudgetExhausted,
    BudgetKind,
    DailyLimitReached,
    InMemoryBudget,
    InvalidGrant,
    ManualClock,
    UnlimitedBudget,
)
from spvhub_common.settings import ServiceSettings

TOKEN = "tok-" + "x" * 20
UPLOAD_OK = (b'<?xml version="1.0" encoding="UTF-8"?>\n<header xmlns="mfp:anaf:dgti:spv:respUploadFisier:v1" '
             b'dateResponse="202108051140" ExecutionStatus="0" index_incarcare="3828"/>')
TOKENS = {"access_token": "a.b.c", "refresh_token": "d.e.f", "token_type": "Bearer", "expires_in": 7776000}


def _answer(request: httpx.Request) -> httpx.Response:
    """A plausible ANAF answer for each path (enough for the client to parse)."""
    path = request.url.path
    if path.endswith("/token"):
        return httpx.Response(200, json=TOKENS)
    if path.endswith("/upload") or path.endswith("/uploadb2c"):
        return httpx.Response(200, content=UPLOAD_OK, headers={"Content-Type": "application/xml"})
    if path.endswith("/stareMesaj"):
        return httpx.Response(200, content=b'<header xmlns="mfp:anaf:dgti:efactura:stareMesajFactura:v1" '
                                            b'stare="in prelucrare"/>')
    if "/descarcare" in path:
        return httpx.Response(200, content=b"PK\x03\x04zip")
    if "/validare/" in path:
        return httpx.Response(200, json={"stare": "ok", "trace_id": "t"})
    if "/transformare/" in path:
        return httpx.Response(200, content=b"%PDF-1.4")
    if path.endswith("/tva") or path.endswith("/interogare"):
        return httpx.Response(200, json={"cod": 200, "found": [], "notFound": []})
    if "/ETRANSPORT/" in path:
        return httpx.Response(200, json={"Errors": [{"errorMessage": "Nu exista mesaje in ultimele 1 zile"}]})
    return httpx.Response(200, json={"eroare": "Nu exista mesaje in ultimele 1 zile", "titlu": "Lista Mesaje"})


async def _every_operation(client: AnafClient) -> None:
    authed = client.with_token(TOKEN)
    await client.exchange_code("code")
    await client.refresh("d.e.f")
    await authed.list_messages("124", 1)
    await authed.list_messages_paginated("124", 1, 2)
    await authed.download("42")
    await authed.upload(b"<Invoice/>", "124")
    await authed.message_state("3828")
    await client.validate(b"<Invoice/>")  # no token: the public host
    await client.xml_to_pdf(b"<Invoice/>")
    await client.registry_lookup(["124"])
    await client.efactura_register_lookup(["124"])
    await authed.transport_list(1, "124")
    await authed.transport_info("124")


EXPECTED_PROD = [
    "POST https://logincert.anaf.ro/anaf-oauth2/v1/token",
    "POST https://logincert.anaf.ro/anaf-oauth2/v1/token",
    "GET https://api.anaf.ro/prod/FCTEL/rest/listaMesajeFactura",
    "GET https://api.anaf.ro/prod/FCTEL/rest/listaMesajePaginatieFactura",
    "GET https://api.anaf.ro/prod/FCTEL/rest/descarcare",
    "POST https://api.anaf.ro/prod/FCTEL/rest/upload",
    "GET https://api.anaf.ro/prod/FCTEL/rest/stareMesaj",
    "POST https://webservicesp.anaf.ro/prod/FCTEL/rest/validare/FACT1",
    "POST https://webservicesp.anaf.ro/prod/FCTEL/rest/transformare/FACT1",
    "POST https://webservicesp.anaf.ro/api/PlatitorTvaRest/v9/tva",
    "POST https://webservicesp.anaf.ro/api/registruroefactura/v1/interogare",
    "GET https://api.anaf.ro/prod/ETRANSPORT/ws/v1/lista/1/124",
    "GET https://api.anaf.ro/prod/ETRANSPORT/ws/v1/info",
]


async def test_production_configuration_sends_each_operation_to_its_documented_host() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _answer(request)

    settings = ServiceSettings(env="test", anaf_env="prod", anaf_emulator_url="")
    config = settings.anaf_config(client_id="id", client_secret=SecretStr("secret"), redirect_uri="https://x/cb")
    client = AnafClient(config, UnlimitedBudget(), transport=httpx.MockTransport(record))
    await _every_operation(client)
    assert client.authorize_url("s").startswith("https://logincert.anaf.ro/anaf-oauth2/v1/authorize?")
    assert [f"{r.method} {r.url.copy_with(query=None)}" for r in seen] == EXPECTED_PROD
    bearer = [r for r in seen if "authorization" in r.headers and r.headers["authorization"].startswith("Bearer")]
    assert all(r.url.host == "api.anaf.ro" for r in bearer)  # a token never travels to another host


async def test_the_ones_test_environment_is_only_the_path_segment() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _answer(request)

    client = AnafClient(AnafConfig(env="test"), UnlimitedBudget(), transport=httpx.MockTransport(record), token=TOKEN)
    await client.list_messages("124", 1)
    await client.validate(b"<Invoice/>")  # with a token: api.anaf.ro, and validare exists only under /prod/
    assert [str(r.url.copy_with(query=None)) for r in seen] == [
        "https://api.anaf.ro/test/FCTEL/rest/listaMesajeFactura",
        "https://api.anaf.ro/prod/FCTEL/rest/validare/FACT1"]


async def test_each_family_uses_its_own_base() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _answer(request)

    config = AnafConfig(oauth_base="http://o.test/x", api_base="http://a.test/y/", public_base="http://p.test",
                        spv_base="http://s.test", env="test", client_id="id", client_secret=SecretStr("s"))
    client = AnafClient(config, UnlimitedBudget(), transport=httpx.MockTransport(record), token=TOKEN)
    await client.exchange_code("c")
    await client.download("1")
    await client.registry_lookup(["124"])
    assert [str(r.url.copy_with(query=None)) for r in seen] == [
        "http://o.test/x/anaf-oauth2/v1/token", "http://a.test/y/test/FCTEL/rest/descarcare",
        "http://p.test/api/PlatitorTvaRest/v9/tva"]
    assert client.url("spv", "SPVWS2/rest/listaMesaje") == "http://s.test/SPVWS2/rest/listaMesaje"


def test_one_setting_points_every_family_at_the_emulator_and_is_refused_in_production() -> None:
    dev = ServiceSettings(env="dev", anaf_emulator_url="http://127.0.0.1:18080/")
    assert set(dev.anaf_bases.values()) == {"http://127.0.0.1:18080"}
    assert dev.anaf_config().base("oauth") == "http://127.0.0.1:18080"
    with pytest.raises(ValueError, match="EMULATOR_URL"):
        ServiceSettings(env="prod", anaf_emulator_url="http://127.0.0.1:18080", s3_secret_key=SecretStr("real-1"),
                        service_token=SecretStr("real-2"), pg_password=SecretStr("x"))


def test_the_old_single_base_is_refused_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPVHUB_ANAF_BASE", "http://127.0.0.1:18080")
    with pytest.raises(ValueError, match="SPVHUB_ANAF_BASE"):
        ServiceSettings(env="dev")


# --- the retry policy ---------------------------------------------------------------------------------------------

class Flaky:
    """Answers `faults` (status or exception) first, then the plausible answer."""

    def __init__(self, *faults: int | Exception) -> None:
        self.faults = list(faults)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.faults:
            fault = self.faults.pop(0)
            if isinstance(fault, Exception):
                raise fault
            if fault == 200:
                return httpx.Response(200, content=b'<header xmlns="mfp:anaf:dgti:spv:respUploadFisier:v1" '
                                                    b'ExecutionStatus="1"><Errors errorMessage="A aparut o eroare '
                                                    b'tehnica. Cod: 1814"/></header>')
            return httpx.Response(fault, text="Service Unavailable")
        return _answer(request)


def _client(flaky: Flaky, clock: ManualClock | None = None, retries: int = 4) -> AnafClient:
    clock = clock or ManualClock(datetime(2026, 1, 15, 10, 0, tzinfo=UTC))
    config = AnafConfig(env="test", retries=retries, backoff=0.001, client_id="id", client_secret=SecretStr("s"))
    return AnafClient(config, InMemoryBudget(clock=clock), transport=httpx.MockTransport(flaky), token=TOKEN,
                      clock=clock)


async def test_reads_are_retried_through_transient_faults() -> None:
    flaky = Flaky(503, 502, httpx.ReadTimeout("slow"))
    client = _client(flaky)
    assert await client.download("42") == b"PK\x03\x04zip"
    assert len(flaky.requests) == 4 and client.stats.attempts == 4 and client.stats.transient_failures == 3


async def test_retries_stop_after_the_configured_attempts() -> None:
    flaky = Flaky(503, 503, 503, 503, 503)
    with pytest.raises(AnafUnavailable):
        await _client(flaky).message_state("3828")
    assert len(flaky.requests) == 4


async def test_an_upload_is_never_sent_twice_once_it_may_have_left() -> None:
    for fault in (503, httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("closed"), 200):
        flaky = Flaky(fault)
        with pytest.raises(AnafUnavailable) as info:
            await _client(flaky).upload(b"<Invoice/>", "124")
        assert len(flaky.requests) == 1, fault  # 200 = "A aparut o eroare tehnica. Cod: 1814"
        assert info.value.sent is True
    assert b"1814" in (info.value.response or b"")


async def test_an_upload_whose_connection_was_never_made_is_sent_again() -> None:
    flaky = Flaky(httpx.ConnectError("refused"))
    answer = await _client(flaky).upload(b"<Invoice/>", "124")
    assert answer.index == "3828" and len(flaky.requests) == 2


async def test_a_token_call_is_never_repeated_after_it_left() -> None:
    for fault in (httpx.ReadTimeout("slow"), 502):
        flaky = Flaky(fault)
        with pytest.raises(AnafUnavailable):
            await _client(flaky).refresh("d.e.f")  # the refresh may have rotated the pair at ANAF
        assert len(flaky.requests) == 1
    refused: list[httpx.Request] = []

    def invalid_grant(request: httpx.Request) -> httpx.Response:
        refused.append(request)
        return httpx.Response(400, json={"error": "invalid_grant", "error_description": "expired"})

    client = AnafClient(AnafConfig(client_id="id"), UnlimitedBudget(), transport=httpx.MockTransport(invalid_grant))
    with pytest.raises(InvalidGrant):
        await client.exchange_code("c")
    assert len(refused) == 1


async def test_limits_are_never_retried_and_the_cap_is_read_from_anafs_text() -> None:
    """stareMesaj's cap per index is published as 100, 10 and 20 in different places: the client takes the number
    ANAF writes, and the shared budget keeps every replica off that index until midnight in Romania."""
    clock = ManualClock(datetime(2026, 1, 15, 10, 0, tzinfo=UTC))
    requests: list[httpx.Request] = []

    def capped(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, content=b'<header xmlns="mfp:anaf:dgti:efactura:stareMesajFactura:v1">'
                                           b'<Errors errorMessage="S-au facut deja 20 descarcari de mesaj in cursul '
                                           b'zilei"/></header>')

    budget = InMemoryBudget(clock=clock)
    client = AnafClient(AnafConfig(env="test", backoff=0.001), budget, transport=httpx.MockTransport(capped),
                        token=TOKEN, clock=clock)
    with pytest.raises(DailyLimitReached) as info:
        await client.message_state("3828")
    assert info.value.limit == 20 and info.value.resets_at == datetime(2026, 1, 15, 22, 0, tzinfo=UTC)
    assert len(requests) == 1
    with pytest.raises(BudgetExhausted):
        await client.message_state("3828")
    assert len(requests) == 1  # the second ask never reached ANAF
    assert await budget.remaining(BudgetKind.EF_STATE, "3828") == 0
    clock.set(datetime(2026, 1, 15, 22, 0, 1, tzinfo=UTC))  # next day in Romania
    with pytest.raises(DailyLimitReached):
        await client.message_state("3828")
    assert len(requests) == 2
