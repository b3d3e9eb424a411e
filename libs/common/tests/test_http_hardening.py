"""The service app factory's hardening: request bodies capped per endpoint (413 body_too_large before the body
is read whole, with or without Content-Length), `Cache-Control: no-store` on API answers, and the client address
taken from X-Forwarded-For only behind a trusted proxy."""
from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from spvhub_common.clientaddr import client_address, resolve
from spvhub_common.http import create_app
from spvhub_common.settings import ServiceSettings
from spvhub_devtools.gateway_conf import BODY_LIMITS, DEFAULT_BODY_LIMIT

MIB = 1024 * 1024


class Item(BaseModel):
    text: str


def _app(service: str, trusted: list[str] | None = None) -> tuple[httpx.AsyncClient, dict[str, int]]:
    seen = {"json": 0, "raw": 0}
    router = APIRouter()

    @router.post("/api/x/items")
    async def items(body: Item) -> dict[str, int]:
        seen["json"] += 1
        return {"length": len(body.text)}

    @router.post("/api/efactura/companies/{cif}/submissions")
    async def upload(cif: str, request: Request) -> dict[str, int]:
        data = b""
        async for chunk in request.stream():
            data += chunk
        seen["raw"] += 1
        return {"received": len(data)}

    @router.get("/api/x/public")
    async def public() -> JSONResponse:
        return JSONResponse({"ok": True}, headers={"Cache-Control": "public, max-age=60"})

    @router.get("/api/x/doc.pdf")
    async def pdf() -> Response:
        return Response(b"%PDF-1.7", media_type="application/pdf")

    @router.get("/api/x/who")
    async def who(request: Request) -> dict[str, str]:
        return {"client": client_address(request, request.app.state.settings.trusted_proxies)}

    settings = ServiceSettings(service_name=service, env="test", trusted_proxies=trusted or [])
    app = create_app(settings, title="t", description="t", routers=[router])
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.1.2.3", 5555)),
                               base_url="http://svc")
    return client, seen


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        sent += n
        yield b"x" * n


async def test_json_body_over_the_default_is_refused_before_the_handler() -> None:
    client, seen = _app("efactura")
    big = '{"text":"' + "a" * (DEFAULT_BODY_LIMIT + 10) + '"}'
    r = await client.post("/api/x/items", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    err = r.json()["error"]
    assert err["code"] == "body_too_large" and err["details"]["max_bytes"] == DEFAULT_BODY_LIMIT
    assert err["message"].startswith("Corpul cererii")  # Romanian first
    assert "X-Request-ID" in r.headers
    assert seen["json"] == 0
    ok = await client.post("/api/x/items", json={"text": "hello"})
    assert ok.status_code == 200 and ok.headers["Cache-Control"] == "no-store" and seen["json"] == 1


async def test_streamed_body_without_content_length_is_cut_at_the_limit() -> None:
    client, seen = _app("efactura")
    r = await client.post("/api/x/items", content=_chunks(2 * MIB), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    assert seen["json"] == 0
    limit = next(b.max_bytes for b in BODY_LIMITS if b.service == "efactura")
    r = await client.post("/api/efactura/companies/RO1/submissions", content=_chunks(limit + 1),
                          headers={"Content-Type": "application/xml"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    assert seen["raw"] == 0


async def test_file_endpoints_get_their_own_larger_limit() -> None:
    client, seen = _app("efactura")
    r = await client.post("/api/efactura/companies/RO1/submissions", content=b"x" * (5 * MIB),
                          headers={"Content-Type": "application/xml"})
    assert r.status_code == 200 and r.json() == {"received": 5 * MIB}
    r = await client.post("/api/efactura/companies/RO1/submissions", content=b"x" * (12 * MIB),
                          headers={"Content-Type": "application/xml"})
    assert r.status_code == 413 and seen["raw"] == 1
    # the same path in another service has no such exception
    other, _ = _app("notifier")
    r = await other.post("/api/efactura/companies/RO1/submissions", content=b"x" * (2 * MIB),
                         headers={"Content-Type": "application/xml"})
    assert r.status_code == 413


async def test_api_answers_are_no_store_and_hardened_unless_the_endpoint_says_otherwise() -> None:
    client, _ = _app("auth")
    assert (await client.get("/api/x/public")).headers["Cache-Control"] == "public, max-age=60"
    who = await client.get("/api/x/who")
    assert who.headers["Cache-Control"] == "no-store" and who.headers["X-Content-Type-Options"] == "nosniff"
    assert who.headers["X-Frame-Options"] == "DENY" and who.headers["Referrer-Policy"] == "no-referrer"
    assert who.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "Cache-Control" not in (await client.get("/health/live")).headers
    pdf = await client.get("/api/x/doc.pdf")  # an inline PDF: a browser's viewer needs no CSP in its way
    assert "Content-Security-Policy" not in pdf.headers and pdf.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize(("trusted", "xff", "expected"), [
    ([], "1.2.3.4", "10.1.2.3"),                                  # no trusted proxy: the header is ignored
    (["10.0.0.0/8"], "1.2.3.4", "1.2.3.4"),                        # the gateway's word is taken
    (["10.0.0.0/8"], "6.6.6.6, 1.2.3.4", "1.2.3.4"),               # what the client wrote on the left is not
    (["10.0.0.0/8"], "6.6.6.6, 1.2.3.4, 10.9.9.9", "1.2.3.4"),     # behind two trusted proxies
    (["192.168.0.0/16"], "1.2.3.4", "10.1.2.3"),                   # a peer that is not a trusted proxy
    (["10.0.0.0/8"], "not-an-ip", "10.1.2.3"),
])
async def test_client_address_believes_forwarded_for_only_from_trusted_proxies(
        trusted: list[str], xff: str, expected: str) -> None:
    client, _ = _app("auth", trusted)
    r = await client.get("/api/x/who", headers={"X-Forwarded-For": xff})
    assert r.json()["client"] == expected


def test_trusted_proxies_setting_is_validated() -> None:
    assert ServiceSettings(env="test", trusted_proxies="127.0.0.1/32, 10.0.0.0/8").trusted_proxies == [
        "127.0.0.1/32", "10.0.0.0/8"]
    with pytest.raises(ValueError):
        ServiceSettings(env="test", trusted_proxies=["not-a-cidr"])
    assert resolve("::1", ["2001:db8::1"], ["::1/128"]) == "2001:db8::1"
