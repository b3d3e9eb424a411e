"""The ANAF client's default wire (one pyreqwest pool, through httpx or directly for plain GETs) against real HTTP
servers on loopback (aiohttp's test server): bodies and headers go through intact, faults surface as the exceptions
the client classifies (by the phase they happened in), no cookie is kept."""
from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from spvhub_common.anaf import AnafClient, AnafConfig, AnafUnavailable, InMemoryBudget, MessageExpired, Unauthorized
from spvhub_common.anaf.transport import default_transport


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({"method": request.method, "body": body.decode(),
                                  "cookie": request.headers.get("Cookie"), "agent": request.headers.get("User-Agent")},
                                 headers={"Set-Cookie": "session=tenant-a; Path=/"})

    async def zip_bytes(request: web.Request) -> web.Response:
        return web.Response(body=b"PK\x03\x04" + bytes(range(256)) * 400, content_type="application/zip")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="late")

    app = web.Application()
    app.add_routes([web.route("*", "/echo", echo), web.get("/zip", zip_bytes), web.get("/slow", slow)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_requests_and_binary_bodies_round_trip(server: str) -> None:
    async with httpx.AsyncClient(transport=default_transport(), headers={"User-Agent": "spvhub-test"}) as http:
        r = await http.post(f"{server}/echo", content=b"<Invoice/>")
        assert r.status_code == 200
        assert r.json()["method"] == "POST" and r.json()["body"] == "<Invoice/>" and r.json()["agent"] == "spvhub-test"
        z = await http.get(f"{server}/zip")
        assert z.headers["content-type"] == "application/zip"
        assert z.content == b"PK\x03\x04" + bytes(range(256)) * 400


async def test_the_transport_keeps_no_cookie_between_requests(server: str) -> None:
    transport = default_transport()
    try:
        for _ in range(2):  # straight through the transport: httpx's own cookie jar is not involved
            r = await transport.handle_async_request(httpx.Request("GET", f"{server}/echo"))
            await r.aread()
            assert r.headers["set-cookie"].startswith("session=tenant-a")
            assert r.json()["cookie"] is None
    finally:
        await transport.aclose()


async def test_a_slow_answer_is_a_read_timeout(server: str) -> None:
    async with httpx.AsyncClient(transport=default_transport(timeout=httpx.Timeout(5, read=0.2))) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(f"{server}/slow")


async def test_a_refused_connection_is_a_transport_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with httpx.AsyncClient(transport=default_transport(), timeout=2) as http:
        with pytest.raises(httpx.TransportError):
            await http.get(f"http://127.0.0.1:{port}/")


@pytest.fixture
async def raw_server() -> AsyncIterator[str]:
    """A server that reads each request and then misbehaves: /drop closes the connection without an answer,
    /cut answers 200 with half the announced body."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if b" /cut " in head.split(b"\r\n", 1)[0] + b" ":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf")
            await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    finally:
        srv.close()


async def test_a_connection_lost_after_sending_is_never_a_connect_error(raw_server: str) -> None:
    """A ConnectError or ConnectTimeout tells the upload it was never filed (and may be retried): only a fault
    before any byte of the request left may say so, whatever class the HTTP library gives it."""
    async with httpx.AsyncClient(transport=default_transport(timeout=httpx.Timeout(2))) as http:
        with pytest.raises(httpx.TransportError) as dropped:
            await http.post(f"{raw_server}/drop", content=b"<Invoice/>")
        assert not isinstance(dropped.value, httpx.ConnectError | httpx.ConnectTimeout)
        assert isinstance(dropped.value, httpx.RemoteProtocolError)
        with pytest.raises(httpx.ReadError):
            await http.get(f"{raw_server}/cut")


async def test_a_connection_never_accepted_is_a_connect_timeout() -> None:
    with socket.socket() as listener:  # listening, never accepting, its backlog filled: connecting hangs
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(8):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        try:
            async with httpx.AsyncClient(transport=default_transport(timeout=httpx.Timeout(5, connect=0.5))) as http:
                with pytest.raises(httpx.ConnectTimeout):
                    await http.post(f"http://127.0.0.1:{port}/", content=b"<Invoice/>")
        finally:
            for s in fillers:
                s.close()


# --- the ANAF client's direct path: its plain GETs go to the pool without httpx's client layers -----------------

ZIP = b"PK\x03\x04" + bytes(range(256)) * 40
EXPIRED = "Fisierul nu mai poate fi descarcat pentru ca a trecut perioada de 60 de zile in care este disponibil"


@pytest.fixture
async def anaf() -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A loopback stand-in for ANAF's e-Factura host, recording each request it answers."""
    seen: list[web.Request] = []

    async def descarcare(request: web.Request) -> web.Response:
        seen.append(request)
        mid = request.query.get("id")
        if mid == "1":
            return web.Response(body=ZIP, content_type="application/zip", headers={"Set-Cookie": "F5=abc; Path=/"})
        if mid == "2":  # ANAF's JSON error, gzip-encoded on the wire
            body = gzip.compress(json.dumps({"eroare": EXPIRED}).encode())
            return web.Response(body=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        if mid == "3":
            return web.Response(status=503, text="Service Unavailable")
        if mid == "4":
            raise web.HTTPFound("/my.policy")
        if mid == "5":
            await asyncio.sleep(2)
        return web.Response(status=500)

    async def lista(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response({"mesaje": [{"data_creare": "202603101200", "cif": "8000000000", "id_solicitare":
                                              "5001", "detalii": "Factura cu id_incarcare=5001 emisa de cif_emitent="
                                              "8000000000 pentru cif_beneficiar=123", "tip": "FACTURA PRIMITA",
                                              "id": "3001"}],
                                  "numar_inregistrari_in_pagina": 1, "numar_total_inregistrari_per_pagina": 500,
                                  "numar_total_inregistrari": 1, "numar_total_pagini": 1, "index_pagina_curenta": 1,
                                  "serial": "x", "cui": "8000000000", "titlu": "Lista Mesaje"})

    app = web.Application()
    app.add_routes([web.get("/test/FCTEL/rest/descarcare", descarcare),
                    web.get("/test/FCTEL/rest/listaMesajePaginatieFactura", lista)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


def _client(base: str, **cfg: float) -> AnafClient:
    return AnafClient(AnafConfig.for_emulator(base, **cfg), InMemoryBudget(), token="tok-secret")


async def test_the_direct_path_downloads_lists_and_sends_what_httpx_sent(
        anaf: tuple[str, list[web.Request]]) -> None:
    base, seen = anaf
    client = _client(base)
    try:
        assert client._direct is not None  # noqa: SLF001 - the default wire has the direct path
        assert await client.download("1") == ZIP
        page = await client.list_messages_paginated("RO8000000000", 1_773_000_000_000, 1_773_100_000_000, 2)
        assert [m.id for m in page.messages] == ["3001"] and page.numar_total_pagini == 1
        dl, ls = seen
        assert dl.headers["Authorization"] == "Bearer tok-secret"
        assert dl.headers["User-Agent"] == client.config.user_agent
        assert dict(ls.query) == {"startTime": "1773000000000", "endTime": "1773100000000", "cif": "8000000000",
                                  "pagina": "2"}
        await client.download("1")
        assert "Cookie" not in seen[-1].headers  # the F5 cookie of the first answer is not kept
        pool = client._direct  # noqa: SLF001 - the pool the calls used
        assert not pool.closed
    finally:
        await client.aclose()
    assert pool.closed


async def test_the_direct_path_classifies_answers_like_the_httpx_path(anaf: tuple[str, list[web.Request]]) -> None:
    base, _ = anaf
    client = _client(base, read_timeout=0.3)
    try:
        with pytest.raises(MessageExpired):  # decoded from gzip, then classified by ANAF's wording
            await client.download("2")
        with pytest.raises(AnafUnavailable) as e503:
            await client.download("3")
        assert e503.value.status == 503
        with pytest.raises(Unauthorized, match="my.policy"):  # a redirect is never followed
            await client.download("4")
        with pytest.raises(AnafUnavailable, match="timeout"):
            await client.download("5")
        view = client.with_token("other")  # views share the pool
        assert view._direct is client._direct  # noqa: SLF001
        assert await view.download("1") == ZIP
    finally:
        await client.aclose()


async def test_the_direct_path_reports_a_refused_connection_as_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = _client(f"http://127.0.0.1:{port}", connect_timeout=2)
    try:
        with pytest.raises(AnafUnavailable, match="connection error"):
            await client.download("1")
    finally:
        await client.aclose()
