"""The ANAF client's default transport (httpx over aiohttp) against a real HTTP server on loopback: bodies and
headers go through intact, faults surface as the httpx exceptions the client classifies, no cookie is kept."""
from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
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
    async with httpx.AsyncClient(transport=default_transport(), timeout=httpx.Timeout(5, read=0.2)) as http:
        with pytest.raises(httpx.TimeoutException):
            await http.get(f"{server}/slow")


async def test_a_refused_connection_is_a_transport_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with httpx.AsyncClient(transport=default_transport(), timeout=2) as http:
        with pytest.raises(httpx.TransportError):
            await http.get(f"http://127.0.0.1:{port}/")
