"""Unit tests of AnafClient over httpx.MockTransport, using ANAF's exact documented bodies and error texts."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import structlog
from prometheus_client import REGISTRY
from pydantic import SecretStr
from spvhub_common.anaf import (
    AccessDenied,
    AnafClient,
    AnafConfig,
    AnafUnavailable,
    AuthorizeError,
    BudgetExhausted,
    BudgetKind,
    BudgetLimits,
    DailyLimitReached,
    InMemoryBudget,
    InvalidClient,
    InvalidDocument,
    InvalidGrant,
    InvalidRequest,
    ManualClock,
    MessageExpired,
    NoRights,
    NotFound,
    PageOutOfRange,
    Priority,
    RateLimited,
    TooManyMessages,
    Unauthorized,
    UnexpectedResponse,
    ValidationError,
    WafRejected,
)
from spvhub_common.clock import BUCHAREST
from spvhub_common.ids import valid_cif

pytestmark = pytest.mark.asyncio

ACCESS = "eyJhbGciOiJSUzUxMiJ9.PAYLOAD.c2ln"  # replaced per test by a real-shaped JWT
Handler = Callable[[httpx.Request], httpx.Response]


def make_jwt(claims: dict[str, Any]) -> str:
    def seg(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj, indent=2).encode()).rstrip(b"=").decode()

    return f"{seg({'alg': 'RS512', 'kid': 'anaf_2023_2024'})}.{seg(claims)}.c2lnbmF0dXJl"


ACCESS_JWT = make_jwt(
    {
        "token_type": "Bearer",
        "scope": "clientappid info issuer role serial",
        "scope_data": [{"id": "serial", "value": "34:00:00:25:69"}],
        "iss": "https://logincert.anaf.ro",
        "clientappid": "ab" * 24,
        "role": "HELLO,EFACTURA,ETRANSPORT,SRV_EFACTURA",
        "serial": "34:00:00:25:69",
        "iat": 1697733635,
        "nbf": 1697733635,
        "exp": 1705509635,
    }
)
REFRESH_JWT = make_jwt({"iat": 1697733635, "exp": 1697733635 + 365 * 86400})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 1, 15, 10, 0, tzinfo=UTC))


class Harness:
    def __init__(self, clock: ManualClock, limits: BudgetLimits | None = None, **cfg: Any) -> None:
        self.requests: list[httpx.Request] = []
        self.handler: Handler = lambda r: httpx.Response(500)
        self.budget = InMemoryBudget(limits, clock)
        cfg.setdefault("retries", 1)  # one attempt: these tests read how each answer is classified
        config = AnafConfig(
            client_id="ab" * 24,
            client_secret=SecretStr("cd" * 32),
            redirect_uri="https://app.example/callback",
            env="test",
            **cfg,
        )
        self.client = AnafClient(
            config, self.budget, token=ACCESS_JWT, transport=httpx.MockTransport(self._handle), clock=clock
        )

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def reply(self, status: int = 200, **kwargs: Any) -> None:
        self.handler = lambda r: httpx.Response(status, **kwargs)


@pytest.fixture
def h(clock: ManualClock) -> Harness:
    return Harness(clock)


def eroare(text: str, titlu: str = "Lista Mesaje") -> dict[str, Any]:
    return {"json": {"eroare": text, "titlu": titlu}}


def xml_errors(text: str, ns: str = "mfp:anaf:dgti:spv:respUploadFisier:v1") -> dict[str, Any]:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><header xmlns="{ns}" dateResponse="202108051140" '
        f'ExecutionStatus="1"><Errors errorMessage="{text}"/></header>'
    )
    return {"content": body.encode(), "headers": {"Content-Type": "application/xml"}}


def counter(endpoint: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("anaf_calls_total", {"endpoint": endpoint, "outcome": outcome}) or 0.0


# --- OAuth ---------------------------------------------------------------------------------------


async def test_authorize_url_and_callback(h: Harness) -> None:
    url = h.client.authorize_url("st4te")
    assert url.startswith("https://logincert.anaf.ro/anaf-oauth2/v1/authorize?response_type=code&client_id=abab")
    assert "token_content_type=jwt" in url and "state=st4te" in url
    assert "redirect_uri=https%3A%2F%2Fapp.example%2Fcallback" in url
    cb = AnafClient.parse_authorize_callback("https://app.example/callback?code=" + "a" * 64 + "&state=st4te")
    assert cb.code == "a" * 64 and cb.state == "st4te"
    with pytest.raises(AccessDenied) as exc:
        AnafClient.parse_authorize_callback("https://app.example/callback?error=access_denied&state=st4te")
    assert exc.value.state == "st4te"
    with pytest.raises(AuthorizeError):
        AnafClient.parse_authorize_callback({"error": "server_error"})
    with pytest.raises(AuthorizeError):
        AnafClient.parse_authorize_callback("state=x")


async def test_exchange_code_reads_jwt_claims_and_uses_basic_auth(h: Harness) -> None:
    h.reply(
        json={
            "access_token": ACCESS_JWT,
            "refresh_token": REFRESH_JWT,
            "token_type": "Bearer",
            "expires_in": 7776000,
        }
    )
    tokens = await h.client.exchange_code("c0de")
    assert tokens.access_token.get_secret_value() == ACCESS_JWT
    assert tokens.serial == "34:00:00:25:69"
    assert tokens.access_expires_at == datetime.fromtimestamp(1705509635, UTC)
    assert tokens.refresh_expires_at == datetime.fromtimestamp(1697733635 + 365 * 86400, UTC)
    assert "EFACTURA" in tokens.roles and tokens.client_app_id == "ab" * 24
    assert ACCESS_JWT not in repr(tokens) and REFRESH_JWT not in str(tokens)
    req = h.requests[0]
    assert req.url.path == "/anaf-oauth2/v1/token"
    assert req.headers["Authorization"] == "Basic " + base64.b64encode(f"{'ab' * 24}:{'cd' * 32}".encode()).decode()
    form = dict(x.split("=", 1) for x in req.content.decode().split("&"))
    assert form == {
        "grant_type": "authorization_code",
        "code": "c0de",
        "redirect_uri": "https%3A%2F%2Fapp.example%2Fcallback",
        "token_content_type": "jwt",
    }


async def test_refresh_body_client_auth_and_keeps_old_refresh_if_none_returned(clock: ManualClock) -> None:
    h = Harness(clock, client_auth="body")
    h.reply(json={"access_token": ACCESS_JWT, "token_type": "Bearer"})
    tokens = await h.client.refresh(SecretStr(REFRESH_JWT))
    assert tokens.refresh_token.get_secret_value() == REFRESH_JWT
    form = h.requests[0].content.decode()
    assert "grant_type=refresh_token" in form and "client_secret=" + "cd" * 32 in form
    assert "Authorization" not in h.requests[0].headers


@pytest.mark.parametrize(
    ("status", "body", "exc"),
    [
        (400, {"error": "invalid_grant", "error_description": "Refresh Token status is expired"}, InvalidGrant),
        (400, {"error": "invalid_client", "error_description": "bad client"}, InvalidClient),
        (401, {"error": "invalid_client"}, InvalidClient),
        (400, {"error": "invalid_request"}, InvalidRequest),
    ],
)
async def test_token_errors(h: Harness, status: int, body: dict[str, str], exc: type[Exception]) -> None:
    h.reply(status, json=body)
    with pytest.raises(exc) as info:
        await h.client.refresh(REFRESH_JWT)
    assert REFRESH_JWT not in str(info.value) and "cd" * 32 not in repr(info.value)


async def test_secret_never_in_config_repr() -> None:
    cfg = AnafConfig(client_id="x", client_secret=SecretStr("s3cr3t-value"))
    assert "s3cr3t-value" not in repr(cfg) and "s3cr3t-value" not in str(cfg.model_dump())


# --- e-Factura lists -----------------------------------------------------------------------------

PAGE = {
    "mesaje": [
        {
            "data_creare": "202211011336",
            "cif": "8000000000",
            "id_solicitare": "5001131297",
            "detalii": "Factura cu id_incarcare=5001131297 emisa de cif_emitent=8000000000 pentru cif_beneficiar=3",
            "tip": "FACTURA TRIMISA",
            "id": "3001503294",
        },
        {
            "data_creare": 202211011337,
            "cif": 8000000000,
            "id_solicitare": 5001131298,
            "detalii": "Erori de validare identificate la factura primita cu id_incarcare=5001131298",
            "tip": "ERORI FACTURA",
            "id": 3001503295,
        },
    ],
    "numar_inregistrari_in_pagina": 2,
    "numar_total_inregistrari_per_pagina": 500,
    "numar_total_inregistrari": 14130,
    "numar_total_pagini": 29,
    "index_pagina_curenta": 29,
    "serial": "1234AA456",
    "cui": "8000000000,8000000001, 8000000002",
    "titlu": "Lista Mesaje disponibile din intervalul 06-09-2022 09:48:20 - 02-11-2022 11:49:24",
}


async def test_paginated_list_parses_page(h: Harness) -> None:
    h.reply(json=PAGE)
    page = await h.client.list_messages_paginated("RO8000000000", 1646037374000, 1646037974000, 29, "T")
    req = h.requests[0]
    assert req.url.path == "/test/FCTEL/rest/listaMesajePaginatieFactura"
    assert dict(req.url.params) == {
        "startTime": "1646037374000",
        "endTime": "1646037974000",
        "cif": "8000000000",
        "pagina": "29",
        "filtru": "T",
    }
    assert req.headers["Authorization"] == f"Bearer {ACCESS_JWT}"
    assert page.numar_total_pagini == 29 and page.index_pagina_curenta == 29 and not page.has_next
    assert page.cui == {"8000000000", "8000000001", "8000000002"}
    first, second = page.messages
    assert first.id == "3001503294" and first.id_solicitare == "5001131297" and first.tip == "FACTURA TRIMISA"
    assert first.data_creare == datetime(2022, 11, 1, 13, 36, tzinfo=BUCHAREST)
    assert first.data_creare.astimezone(UTC) == datetime(2022, 11, 1, 11, 36, tzinfo=UTC)
    assert second.id == "3001503295" and second.cif == "8000000000" and second.id_solicitare == "5001131298"
    assert await h.budget.remaining(BudgetKind.EF_LIST_PAGED, "8000000000") == 99_999


async def test_iter_pages_walks_until_total(h: Harness) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        p = int(req.url.params["pagina"])
        return httpx.Response(200, json={**PAGE, "index_pagina_curenta": p, "numar_total_pagini": 3})

    h.handler = handler
    pages = [p.index_pagina_curenta async for p in h.client.iter_message_pages("8000000000", 1, 2)]
    assert pages == [1, 2, 3]


@pytest.mark.parametrize("text", ["Nu exista mesaje in intervalul selectat", "Nu exista mesaje in ultimele 15 zile"])
async def test_benign_no_messages_is_empty(h: Harness, text: str) -> None:
    h.reply(**eroare(text))
    page = await h.client.list_messages_paginated("8000000000", 1, 2)
    assert page.messages == [] and page.numar_total_pagini == 0
    lst = await h.client.list_messages("8000000000", 15)
    assert lst.messages == [] and lst.cui is None
    assert counter("efactura.listaMesajeFactura", "ok") >= 1


async def test_simple_list(h: Harness) -> None:
    h.reply(json={k: PAGE[k] for k in ("mesaje", "serial", "cui", "titlu")})
    lst = await h.client.list_messages(8000000000, 1, "P")
    assert dict(h.requests[0].url.params) == {"zile": "1", "cif": "8000000000", "filtru": "P"}
    assert [m.id for m in lst.messages] == ["3001503294", "3001503295"] and lst.serial == "1234AA456"
    with pytest.raises(ValidationError):
        await h.client.list_messages(8000000000, 1, "X")


# Table-driven: ANAF's exact texts (anaf-api.md §2.3-2.6) -> typed error.
LIST_ERRORS: list[tuple[str, type[Exception]]] = [
    ("Nu aveti drept in SPV pentru CIF=8000000000", NoRights),
    ("Nu exista niciun CIF pentru care sa aveti drept in SPV", NoRights),
    ("CIF introdus= aaa nu este un numar", ValidationError),
    ("Numarul de zile introdus= aaa nu este un numar intreg", ValidationError),
    ("Numarul de zile trebuie sa fie intre 1 si 60", ValidationError),
    ("Valorile acceptate pentru parametrul filtru sunt E, T, P sau R", ValidationError),
    (
        "Lista de mesaje este mai mare decat numarul de 500 elemente permise in pagina. Folositi endpoint-ul cu "
        "paginatie.",
        TooManyMessages,
    ),
    ("S-au facut deja 1000 interogari de lista mesaje de catre utilizator in cursul zilei", DailyLimitReached),
    (
        "S-au facut deja 1500 de interogari de tip lista mesaje de catre CUI=8000000000 in cursul zilei",
        DailyLimitReached,
    ),
    (
        "startTime = 09-07-2022 10:41:11 nu poate fi mai vechi de 60 de zile fata de momentul requestului",
        ValidationError,
    ),
    ("endTime = 09-08-2022 10:41:11 nu poate fi <= startTime = 06-09-2022 09:48:20", ValidationError),
    ("endTime = 02-12-2022 11:49:24 nu poate in viitor fata de momentul requestului", ValidationError),
    (
        "endTime = 02-12-2022 11:49:24 nu poate in viitor fata de momentul requestului = 30-07-2026 15:15:27",
        ValidationError,
    ),
    ("startTime = aaa nu este un numar sau nu are o valoare acceptata de sistem", ValidationError),
    ("CIF introdus= aaa nu este un numar sau nu are o valoare acceptata de sistem", ValidationError),
    ("Pagina solicitata 50 este mai mare decat numarul toatal de pagini 29", PageOutOfRange),
    ("A aparut o eroare tehnica. Cod: 123", AnafUnavailable),
    ("Ceva complet nou", UnexpectedResponse),
]


@pytest.mark.parametrize(("text", "exc"), LIST_ERRORS)
async def test_list_error_classification(h: Harness, text: str, exc: type[Exception]) -> None:
    h.reply(**eroare(text))
    with pytest.raises(exc) as info:
        await h.client.list_messages_paginated("8000000000", 1, 2)
    assert info.value.text == text  # type: ignore[attr-defined]
    if isinstance(info.value, NoRights):
        assert info.value.cif == "8000000000"
    if isinstance(info.value, DailyLimitReached):
        assert info.value.scope == "efactura.lista_paginatie:8000000000"
        assert info.value.resets_at == datetime(2026, 1, 15, 22, 0, tzinfo=UTC)


async def test_anaf_daily_limit_marks_shared_budget(h: Harness) -> None:
    h.reply(**eroare("S-au facut deja 1500 de interogari de tip lista mesaje de catre CUI=8000000000 in cursul zilei"))
    with pytest.raises(DailyLimitReached):
        await h.client.list_messages("8000000000", 3)
    with pytest.raises(BudgetExhausted):
        await h.client.list_messages("8000000000", 3)
    assert len(h.requests) == 1  # the second call never reached ANAF


async def test_http_400_custom_error_message(h: Harness) -> None:
    h.reply(
        400,
        json={
            "timestamp": "19-08-2021 11:59:29",
            "status": 400,
            "error": "Bad Request",
            "message": "Parametrii startTime, endTime, cif si pagina sunt obligatorii",
        },
    )
    with pytest.raises(ValidationError) as info:
        await h.client.list_messages_paginated("8000000000", 1, 2)
    assert info.value.text == "Parametrii startTime, endTime, cif si pagina sunt obligatorii"
    assert info.value.status == 400


# --- transport-level outcomes --------------------------------------------------------------------


async def test_429_is_rate_limited_and_blocks_the_window(h: Harness, clock: ManualClock) -> None:
    h.reply(429, json={"error": "Too Many Requests"}, headers={"Retry-After": "30"})
    with pytest.raises(RateLimited) as info:
        await h.client.download("3001503294")
    assert info.value.retry_after == 30.0 and info.value.transient
    assert await h.budget.remaining(BudgetKind.API) == 0


@pytest.mark.parametrize("status", [401, 403])
async def test_invalid_token_is_unauthorized(h: Harness, status: int) -> None:
    h.reply(
        status,
        json={"error": "invalid_token", "error_description": "The access token expired"},
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )
    with pytest.raises(Unauthorized) as info:
        await h.client.list_messages("8000000000", 1)
    assert info.value.status == status and ACCESS_JWT not in str(info.value)


async def test_my_policy_redirect_is_unauthorized(h: Harness) -> None:
    h.reply(302, headers={"Location": "/my.policy"})
    with pytest.raises(Unauthorized):
        await h.client.list_messages("8000000000", 1)


WAF = (
    "<html><head><title>Request Rejected</title></head><body>The requested URL was rejected. Please consult "
    "with your administrator.<br><br>Your support ID is: 1234567890123456789<br><br></body></html>"
)


async def test_waf_page_with_200(h: Harness) -> None:
    h.reply(200, content=WAF.encode(), headers={"Content-Type": "text/html; charset=utf-8"})
    with pytest.raises(WafRejected) as info:
        await h.client.xml_to_pdf(b"<Invoice/>", "UBL", validate=False)
    assert info.value.support_id == "1234567890123456789"
    assert h.requests[0].url.path == "/prod/FCTEL/rest/transformare/FACT1/DA"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_unavailable(h: Harness, status: int) -> None:
    h.reply(status, text="Service Unavailable")
    with pytest.raises(AnafUnavailable) as info:
        await h.client.download("1")
    assert info.value.transient


async def test_timeouts_and_connection_errors_are_unavailable(h: Harness) -> None:
    def timeout(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=req)

    h.handler = timeout
    with pytest.raises(AnafUnavailable):
        await h.client.download("1")

    def refused(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=req)

    h.handler = refused
    with pytest.raises(AnafUnavailable):
        await h.client.download("1")
    assert counter("efactura.descarcare", "unavailable") >= 2


async def test_no_token_configured(clock: ManualClock) -> None:
    h = Harness(clock)
    client = AnafClient(h.client.config, h.budget, transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    with pytest.raises(Unauthorized):
        await client.list_messages("124", 1)
    bound = client.with_token(SecretStr("tok"))
    with pytest.raises(UnexpectedResponse):  # empty body is not JSON
        await bound.list_messages("124", 1)


async def test_async_token_provider_and_per_call_token(h: Harness) -> None:
    h.reply(**eroare("Nu exista mesaje in ultimele 1 zile"))

    async def provider() -> str:
        return "from-provider"

    await h.client.with_token(provider).list_messages("124", 1)
    await h.client.list_messages("124", 1, token="per-call")
    assert [r.headers["Authorization"] for r in h.requests] == ["Bearer from-provider", "Bearer per-call"]


# --- download ------------------------------------------------------------------------------------


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("5004879752.xml", "<Invoice/>")
        zf.writestr("semnatura_5004879752.xml", "<Invoice><Signature/></Invoice>")
    return buf.getvalue()


async def test_download_zip(h: Harness) -> None:
    data = _zip()
    h.reply(content=data, headers={"Content-Type": "application/zip"})
    assert await h.client.download(3006850898) == data
    assert dict(h.requests[0].url.params) == {"id": "3006850898"}
    assert await h.budget.remaining(BudgetKind.EF_DOWNLOAD, "3006850898") == 9


DOWNLOAD_ERRORS: list[tuple[str, type[Exception]]] = [
    ("Id descarcare introdus= 123a nu este un numar intreg", ValidationError),
    ("Nu aveti dreptul sa descarcati acesta factura", NoRights),
    ("Pentru id=21 nu exista inregistrata nici o factura", NotFound),
    ("S-au facut deja 10 descarcari de mesaj in cursul zilei", DailyLimitReached),
    ("S-au facut deja 10 descarcari la mesajul cu id_descarcare=3001503294 in cursul zilei", DailyLimitReached),
    (
        "Fisierul nu mai poate fi descarcat pentru ca a trecut perioada de 60 de zile in care este disponibil",
        MessageExpired,
    ),
]


@pytest.mark.parametrize(("text", "exc"), DOWNLOAD_ERRORS)
async def test_download_errors(h: Harness, text: str, exc: type[Exception]) -> None:
    # ANAF sometimes labels the JSON text/plain.
    h.reply(
        content=json.dumps({"eroare": text, "titlu": "Descarcare mesaj"}).encode(),
        headers={"Content-Type": "text/plain"},
    )
    with pytest.raises(exc) as info:
        await h.client.download("3001503294")
    if isinstance(info.value, MessageExpired):
        assert info.value.reason == text and not info.value.transient
    if isinstance(info.value, DailyLimitReached):
        assert info.value.scope == "efactura.descarcare:3001503294"
        with pytest.raises(BudgetExhausted):
            await h.client.download("3001503294")


async def test_download_budget_cap_stops_before_anaf(h: Harness) -> None:
    h.reply(content=_zip())
    for _ in range(10):
        await h.client.download("77")
    with pytest.raises(BudgetExhausted):
        await h.client.download("77")
    assert len(h.requests) == 10


# --- upload and stareMesaj -----------------------------------------------------------------------


async def test_upload_success(h: Harness) -> None:
    h.reply(
        content=b'<?xml version="1.0" encoding="UTF-8"?>\n<header xmlns="mfp:anaf:dgti:spv:respUploadFisier:v1" '
        b'dateResponse="202108051140" ExecutionStatus="0" index_incarcare="3828"/>',
        headers={"Content-Type": "application/xml"},
    )
    answer = await h.client.upload("<Invoice/>", "RO124", autofactura=True, b2c=True)
    assert answer.index == "3828" and answer.date_response == "202108051140" and answer.execution_status == "0"
    assert answer.raw.endswith(b'index_incarcare="3828"/>')
    req = h.requests[0]
    assert req.method == "POST" and req.url.path == "/test/FCTEL/rest/uploadb2c"
    assert dict(req.url.params) == {"standard": "UBL", "cif": "124", "autofactura": "DA"}
    assert req.content == b"<Invoice/>" and req.headers["Content-Type"] == "text/plain"


UPLOAD_ERRORS: list[tuple[str, type[Exception]]] = [
    ("Valorile acceptate pentru parametrul standard sunt UBL, CN, CII sau RASP", ValidationError),
    ("Marime fisier transmis mai mare de 10 MB.", ValidationError),
    ("CIF introdus= 123a nu este un numar", ValidationError),
    ("Nu aveti drept in SPV pentru CIF=124", NoRights),
    ("Nu exista niciun CIF pentru care sa aveti drept in SPV", NoRights),
    (
        "Fisierul transmis nu este valid. org.xml.sax.SAXParseException; lineNumber: 15; columnNumber: 155; "
        "cvc-elt.1.a: Cannot find the declaration of element 'Invoice1'. ",
        InvalidDocument,
    ),
    ("Daca parametrul extern trebuie completat, valoarea acceptata este DA", ValidationError),
    ("Daca parametrul autofacturare trebuie completat, valoarea acceptata este DA", ValidationError),
    ("CIF introdus= 1234 nu este inregistrat in Registrul RO e-Factura executari silite", ValidationError),
    ("S-au incarcat deja 1000 de mesaje de tip RASP pentru cui=123 in cursul zilei", DailyLimitReached),
    ("A aparut o eroare tehnica. Cod: XXX", AnafUnavailable),
]


@pytest.mark.parametrize(("text", "exc"), UPLOAD_ERRORS)
async def test_upload_errors(h: Harness, text: str, exc: type[Exception]) -> None:
    h.reply(**xml_errors(text.replace("'", "&apos;")))
    with pytest.raises(exc) as info:
        await h.client.upload(b"<Invoice/>", "124", standard="RASP")
    assert info.value.text == text  # type: ignore[attr-defined]
    assert info.value.response and b"errorMessage" in info.value.response  # type: ignore[attr-defined]
    assert len(h.requests) == 1  # an upload is never sent twice, not even after "eroare tehnica"
    if isinstance(info.value, NoRights):
        assert info.value.cif == "124"


async def test_upload_local_checks_spend_nothing(h: Harness) -> None:
    with pytest.raises(ValidationError):
        await h.client.upload(b"x" * (10 * 1024 * 1024 + 1), "124")
    with pytest.raises(ValidationError):
        await h.client.upload(b"<x/>", "124", standard="XYZ")
    assert h.requests == []


@pytest.mark.parametrize(
    ("attrs", "stare", "id_descarcare"),
    [
        ('stare="ok" id_descarcare="1234"', "ok", "1234"),
        ('stare="nok" id_descarcare="1235"', "nok", "1235"),
        ('stare="in prelucrare"', "in prelucrare", None),
        ('stare="XML cu erori nepreluat de sistem"', "XML cu erori nepreluat de sistem", None),
    ],
)
async def test_message_state(h: Harness, attrs: str, stare: str, id_descarcare: str | None) -> None:
    h.reply(content=f'<header xmlns="mfp:anaf:dgti:efactura:stareMesajFactura:v1" {attrs}/>'.encode())
    st = await h.client.message_state(5001131297)
    assert (st.stare, st.id_descarcare, st.final) == (stare, id_descarcare, stare != "in prelucrare")
    assert dict(h.requests[0].url.params) == {"id_incarcare": "5001131297"}


STATE_ERRORS: list[tuple[str, type[Exception]]] = [
    ("Nu aveti dreptul de inteorgare pentru id_incarcare= 18", NoRights),
    ("Nu exista niciun CIF petru care sa aveti drept", NoRights),
    ("Id_incarcare introdus= aaa nu este un numar intreg", ValidationError),
    ("Nu exista factura cu id_incarcare= 15000", NotFound),
    ("S-au facut deja 20 descarcari de mesaj in cursul zilei", DailyLimitReached),
]


@pytest.mark.parametrize(("text", "exc"), STATE_ERRORS)
async def test_message_state_errors(h: Harness, text: str, exc: type[Exception]) -> None:
    h.reply(**xml_errors(text, "mfp:anaf:dgti:efactura:stareMesajFactura:v1"))
    with pytest.raises(exc):
        await h.client.message_state("18")


# --- validare / transformare ---------------------------------------------------------------------


async def test_validate_ok_and_nok(h: Harness) -> None:
    h.reply(json={"stare": "ok", "trace_id": "c8c9da20-843f-4130-91d1-4ee8b0baaa30"})
    res = await h.client.validate(b"<Invoice/>", "UBL")
    assert res.ok and res.trace_id == "c8c9da20-843f-4130-91d1-4ee8b0baaa30"
    assert h.requests[0].url.path == "/prod/FCTEL/rest/validare/FACT1"
    assert h.requests[0].url.host == "api.anaf.ro"
    h.reply(
        json={
            "stare": "nok",
            "Messages": [{"message": "E: validari globale  SCHEMATRON   eroare: [BR-CO-09]"}],
            "trace_id": "t",
        }
    )
    res = await h.client.validate(b"<CreditNote/>", "FCN")
    assert not res.ok and res.messages == ["E: validari globale  SCHEMATRON   eroare: [BR-CO-09]"]


async def test_validate_without_token_uses_public_host(clock: ManualClock) -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={"stare": "ok", "trace_id": "x"})

    client = AnafClient(AnafConfig(), InMemoryBudget(clock=clock), transport=httpx.MockTransport(handler), clock=clock)
    await client.validate("<Invoice/>")
    assert seen[0].url.host == "webservicesp.anaf.ro" and "Authorization" not in seen[0].headers


async def test_xml_to_pdf(h: Harness) -> None:
    h.reply(content=b"%PDF-1.4 ...", headers={"Content-Type": "application/pdf"})
    assert (await h.client.xml_to_pdf("<Invoice/>")).startswith(b"%PDF")
    h.reply(json={"stare": "nok", "Messages": [{"message": "E: bad"}], "trace_id": "t"})
    with pytest.raises(InvalidDocument) as info:
        await h.client.xml_to_pdf("<Invoice/>")
    assert info.value.messages == ["E: bad"]


# --- e-Transport ---------------------------------------------------------------------------------

INFO = [
    {
        "id": 123,
        "uit": "4MXKT7Q2HNVC3A81",
        "cod_decl": 8000000000,
        "den_decl": "TEST SRL",
        "data_transp": "2024-06-24T00:00:00",
        "data_exp_uit": "2024-06-29T00:00:00",
        "ref_decl": "XXX",
        "tr_cod": "8000000000",
        "tr_den": "TEST SRL",
        "nr_veh": "B0000",
        "loc_start": {"tip_loc": "ADR", "adresa_completa": "str. Test"},
        "documente": "XXX",
    }
]


async def test_transport_info(h: Harness) -> None:
    h.reply(json=INFO)
    items = await h.client.transport_info("RO8000000000", uit="4MXKT7Q2HNVC3A81")
    assert h.requests[0].url.path == "/test/ETRANSPORT/ws/v1/info"
    assert dict(h.requests[0].url.params) == {"cui_op": "8000000000", "uit": "4MXKT7Q2HNVC3A81"}
    (t,) = items
    assert t.cod_decl == "8000000000" and t.data_exp_uit is not None and t.data_exp_uit.isoformat() == "2024-06-29"
    h.reply(
        json={
            "trace_id": "x",
            "dateResponse": "202406251616",
            "error": "Nu exista informatii pentru aceasta solicitare",
        }
    )
    assert await h.client.transport_info("8000000000") == []
    h.reply(
        json={"trace_id": "x", "dateResponse": "202406251616", "error": "Nu aveti drept in SPV pentru CIF=8000000000"}
    )
    with pytest.raises(NoRights):
        await h.client.transport_info("8000000000")
    h.reply(
        400,
        json={
            "timestamp": "25-06-2024 16:19:32",
            "status": 400,
            "error": "Bad Request",
            "message": "Parametrul cui_op este obligatoriu",
        },
    )
    with pytest.raises(ValidationError):
        await h.client.transport_info("8000000000")


async def test_transport_list(h: Harness) -> None:
    h.reply(
        json={
            "mesaje": [
                {
                    "uit": "XAXAXAXAXAXAXAXA1",
                    "cod_decl": "8000000000",
                    "sursa": "A",
                    "id_incarcare": "0000000001",
                    "data_creare": "20221010144008",
                    "tip_op": "30",
                    "data_transp": "20221010000000",
                    "tr_cod": "8000000000",
                    "nr_veh": "B00AAA",
                },
                {
                    "cod_decl": 8000000000,
                    "sursa": "A",
                    "id_incarcare": 3,
                    "data_creare": "20221011073136",
                    "mesaje": [{"tip": "ERR", "mesaj": "Nu a fost identificat UIT-ul printre notificarile valide."}],
                },
            ],
            "serial": "XXXX",
            "cui": "8000000000",
            "titlu": "Lista Mesaje disponibile din ultimele 1 zile",
            "dateResponse": "202210111242",
            "ExecutionStatus": 0,
            "trace_id": "680bdefd",
        }
    )
    res = await h.client.transport_list(1, "8000000000")
    assert h.requests[0].url.path == "/test/ETRANSPORT/ws/v1/lista/1/8000000000"
    a, b = res.items
    assert a.uit == "XAXAXAXAXAXAXAXA1" and a.data_transp is not None and a.data_transp.isoformat() == "2022-10-10"
    assert b.cod_decl == "8000000000" and b.id_incarcare == "3" and b.mesaje[0]["tip"] == "ERR"
    h.reply(json={"Errors": [{"errorMessage": "Nu exista mesaje in ultimele 60 zile"}], "ExecutionStatus": 1})
    assert (await h.client.transport_list(60, "8000000000")).items == []
    h.reply(
        json={
            "Errors": [
                {"errorMessage": "S-au facut deja 1000 interogari de lista mesaje de catre utilizator in cursul zilei"}
            ],
            "ExecutionStatus": 1,
        }
    )
    with pytest.raises(DailyLimitReached):
        await h.client.transport_list(60, "8000000000")


async def test_transport_state(h: Harness) -> None:
    h.reply(json={"stare": "ok", "dateResponse": "202208021047", "ExecutionStatus": 0, "trace_id": "t"})
    assert (await h.client.transport_state(1)).stare == "ok"
    h.reply(
        json={
            "Errors": [
                {"errorMessage": "S-au facut deja 100 de verificari, pentru id-incarcare solicitat, in cursul zilei"}
            ],
            "ExecutionStatus": 1,
        }
    )
    with pytest.raises(DailyLimitReached):
        await h.client.transport_state(1)
    with pytest.raises(BudgetExhausted):
        await h.client.transport_state(1)


# --- public registries ---------------------------------------------------------------------------

V9_FOUND = {
    "date_generale": {
        "cui": 1590082,
        "data": "2026-07-01",
        "denumire": "OMV PETROM S.A.",
        "adresa": "MUN. BUCUREŞTI, SECT. 1, STR. CORALILOR, NR.22",
        "nrRegCom": "J40/8302/1997",
        "telefon": "0372868930",
        "codPostal": "013329",
        "stare_inregistrare": "INREGISTRAT din data 02.01.1998",
        "statusRO_e_Factura": True,
    },
    "inregistrare_scop_Tva": {"scpTVA": True, "perioade_TVA": [{"data_inceput_ScpTVA": "1993-07-01"}]},
    "inregistrare_RTVAI": {"statusTvaIncasare": False},
    "stare_inactiv": {"statusInactivi": False},
    "inregistrare_SplitTVA": {"statusSplitTVA": False},
}


async def test_registry_lookup_batches_and_wrappers(h: Harness, clock: ManualClock) -> None:
    bodies: list[Any] = []

    def handler(req: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(req.content))
        if len(bodies) == 1:
            return httpx.Response(200, json={"found": [V9_FOUND], "notFound": [99999992]})
        return httpx.Response(200, json={"cod": 200, "message": "SUCCESS", "found": [], "notFound": [159]})

    h.handler = handler
    # CIFs with their control digit: the client sends only what the platform's normaliser accepts
    task_cuis = ["RO1590082", 99999992] + [valid_cif(seed) for seed in range(1000, 1099)] + [159]
    task = asyncio.create_task(h.client.registry_lookup(task_cuis))
    while not task.done():
        await asyncio.sleep(0.001)
        if clock.sleepers:
            clock.advance(1)  # the second batch waits for the next 1-second public window
    res = task.result()
    assert [len(b) for b in bodies] == [100, 2]
    assert bodies[0][0] == {"cui": 1590082, "data": "2026-01-15"}
    assert h.requests[0].url.path == "/api/PlatitorTvaRest/v9/tva" and "Authorization" not in h.requests[0].headers
    (c,) = res.found
    assert c.cui == "1590082" and c.scp_tva and c.e_factura and not c.inactiv and c.nr_reg_com == "J40/8302/1997"
    assert res.not_found == ["99999992", "159"]
    with pytest.raises(ValidationError):
        await h.client.registry_lookup(["abc"])
    with pytest.raises(ValidationError):  # a wrong control digit never leaves either
        await h.client.registry_lookup(["99999999"])
    assert len(bodies) == 2


async def test_efactura_register_404_means_not_found(h: Harness, clock: ManualClock) -> None:
    h.reply(404, json={"found": [], "notFound": [124]})
    res = await h.client.efactura_register_lookup([124])
    assert res.found == [] and res.not_found == ["124"]
    assert h.requests[0].url.path == "/api/registruroefactura/v1/interogare"
    clock.advance(1)  # 1 request/second on the public host
    h.reply(400, text="Bad Request")
    with pytest.raises(ValidationError):
        await h.client.efactura_register_lookup([124])


async def test_public_429(h: Harness) -> None:
    h.reply(429, text="Too Many Requests")
    with pytest.raises(RateLimited) as info:
        await h.client.registry_lookup([1590082])
    assert info.value.retry_after is None
    assert await h.budget.remaining(BudgetKind.PUBLIC) == 0


# --- observability -------------------------------------------------------------------------------


async def test_metrics_and_logs_never_carry_tokens(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    captured: list[dict[str, Any]] = []
    structlog.configure(
        processors=[lambda _l, _m, ev: captured.append(dict(ev)) or ev, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(io.StringIO()),
    )
    try:
        before = counter("efactura.listaMesajeFactura", "ok")
        h.reply(json=PAGE)
        await h.client.list_messages("8000000000", 1)
        h.reply(401, json={"error": "invalid_token", "error_description": f"bad token {ACCESS_JWT}"})
        with pytest.raises(Unauthorized) as info:
            await h.client.list_messages("8000000000", 1)
        h.reply(json={"access_token": ACCESS_JWT, "refresh_token": REFRESH_JWT})
        await h.client.refresh(REFRESH_JWT)
    finally:
        structlog.reset_defaults()
    assert counter("efactura.listaMesajeFactura", "ok") == before + 1
    assert counter("efactura.listaMesajeFactura", "unauthorized") >= 1
    assert REGISTRY.get_sample_value("anaf_call_duration_seconds_count", {"endpoint": "oauth.refresh"})
    assert ACCESS_JWT not in str(info.value) and "[redacted]" in str(info.value)
    assert {e["endpoint"] for e in captured} >= {"efactura.listaMesajeFactura", "oauth.refresh"}
    assert all({"status", "duration_ms", "outcome"} <= e.keys() for e in captured)
    blob = json.dumps(captured, default=str) + caplog.text + logging.getLogger().name
    for secret in (ACCESS_JWT, REFRESH_JWT, "cd" * 32):
        assert secret not in blob


async def test_priority_interactive_views_use_the_budget_reserve(clock: ManualClock) -> None:
    h = Harness(clock, BudgetLimits(per_minute=5, interactive_reserve=2))
    h.reply(**eroare("Nu exista mesaje in ultimele 1 zile"))
    assert h.client.priority == Priority.BULK
    for _ in range(3):  # a sync fills the bulk share of the window
        await h.client.list_messages("8000000000", 1)
    bulk = asyncio.create_task(h.client.list_messages("8000000000", 1))
    for _ in range(200):
        if clock.sleepers == 1:
            break
        await asyncio.sleep(0)
    assert clock.sleepers == 1 and not bulk.done()
    interactive = h.client.with_priority(Priority.INTERACTIVE)
    await asyncio.wait_for(interactive.list_messages("8000000000", 1), 5)
    # with_token keeps the view's priority
    await asyncio.wait_for(interactive.with_token("other-token").list_messages("8000000000", 1), 5)
    assert h.requests[-1].headers["Authorization"] == "Bearer other-token"
    assert await h.budget.remaining(BudgetKind.API) == 0 and len(h.requests) == 5
    assert h.client.with_token("t").priority == Priority.BULK
    assert h.client.with_token("t", priority=Priority.INTERACTIVE).priority == Priority.INTERACTIVE
    clock.advance(60)
    await asyncio.wait_for(bulk, 5)


def test_cif_to_send_takes_a_cnp_only_where_efactura_does() -> None:
    """A natural person's CNP goes to e-Factura's upload and lists as `cif=`; elsewhere (e-Transport, the public
    registry) a 13-digit value stays refused; an error never echoes 13 digits (it may be a CNP)."""
    from spvhub_common.anaf.client import _cif_to_send
    from spvhub_common.anaf.errors import ValidationError as AnafValidationError

    cnp = "1800101123450"  # valid control digit
    assert _cif_to_send(cnp, "efactura.upload", cnp_ok=True) == cnp
    assert _cif_to_send("RO 12340006", "efactura.upload", cnp_ok=True) == "12340006"
    for raw, ok in ((cnp, False), ("1800101123451", True)):
        with pytest.raises(AnafValidationError) as ei:
            _cif_to_send(raw, "etransport.lista", cnp_ok=ok)
        assert raw not in str(ei.value) and "1********" in str(ei.value)


async def test_rasp_upload_of_a_person_counts_under_its_platform_key(h: Harness) -> None:
    """A natural person's RASP goes to ANAF as cif=<CNP> but is counted under the key the platform knows it by:
    the budget's tables never hold the CNP."""
    h.reply(text='<header xmlns="mfp:anaf:dgti:spv:respUploadFisier:v1" dateResponse="202601151000" '
                 'ExecutionStatus="0" index_incarcare="7"/>')
    cnp = "1800101123450"
    await h.client.upload(b"<header/>", cnp, standard="RASP", budget_key="PFAAAAAAAAAAAA")
    assert h.requests[0].url.params["cif"] == cnp
    assert await h.budget.remaining(BudgetKind.EF_UPLOAD_RASP, "PFAAAAAAAAAAAA") == \
        await h.budget.remaining(BudgetKind.EF_UPLOAD_RASP, "other") - 1
    assert await h.budget.remaining(BudgetKind.EF_UPLOAD_RASP, cnp) == \
        await h.budget.remaining(BudgetKind.EF_UPLOAD_RASP, "other")


async def test_a_persons_lists_count_under_its_person_key(clock: ManualClock) -> None:
    """listaMesaje for a natural person goes to ANAF as cif=<CNP>; the shared budget counts it under the person key
    derived with the installation's PII secret, so the budget's tables never hold the CNP."""
    from spvhub_common.pii import PersonIds

    secret = "unit-test-pii-secret-32-bytes-long"
    h = Harness(clock, pii_secret=SecretStr(secret))
    h.reply(**eroare("Nu exista mesaje in ultimele 1 zile"))
    cnp = "1800101123450"
    await h.client.list_messages(cnp, 1)
    await h.client.list_messages_paginated(cnp, 0, 1000)
    assert [r.url.params["cif"] for r in h.requests] == [cnp, cnp]
    key = PersonIds(secret).key_of(cnp)
    for kind in (BudgetKind.EF_LIST, BudgetKind.EF_LIST_PAGED):
        assert await h.budget.remaining(kind, key) == await h.budget.remaining(kind, "other") - 1
        assert await h.budget.remaining(kind, cnp) == await h.budget.remaining(kind, "other")
