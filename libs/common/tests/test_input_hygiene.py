"""No input yields a 5xx: control characters and numbers no column can hold are refused at the edge (422 with a
stable code, the handler never runs), a value the database still refuses as data is a 422, and an unexpected
exception is a 500 whose body and X-Request-ID carry the request id that the log line (with its traceback) has.
Readiness follows the real database: not ready while it is unreachable, ready again by itself."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket

import httpx
import pytest
import structlog
from fastapi import APIRouter, Request
from pydantic import BaseModel
from spvhub_common.db import create_engine
from spvhub_common.http import create_app
from spvhub_common.logging import configure_logging
from spvhub_common.runtime import ServiceRuntime
from spvhub_devtools.testing import make_settings
from sqlalchemy import MetaData, text


class Item(BaseModel):
    text: str
    n: int = 0


def _app(calls: list[str], database: str | None = None) -> tuple[httpx.AsyncClient, object]:
    router = APIRouter()
    settings = make_settings(service="hygiene", database=database)
    engine = create_engine(settings) if database else None

    @router.get("/api/x/search")
    async def search(q: str = "", amount_min: float | None = None) -> dict[str, str]:
        calls.append("search")
        return {"q": q}

    @router.get("/api/x/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        calls.append("item")
        return {"id": item_id}

    @router.post("/api/x/items")
    async def create(body: Item) -> dict[str, int]:
        calls.append("create")
        return {"n": body.n}

    @router.get("/api/x/boom")
    async def boom() -> None:
        calls.append("boom")
        raise RuntimeError("the handler broke")

    @router.get("/api/x/rows/{row_id}")
    async def row(row_id: int) -> dict[str, int]:
        assert engine is not None
        async with engine.connect() as conn:
            await conn.execute(text("SELECT id FROM t WHERE id = :i"), {"i": row_id})
        return {"id": row_id}

    @router.post("/api/x/rows")
    async def put_row(request: Request) -> dict[str, str]:
        assert engine is not None
        body = await request.json()
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (id, cif) VALUES (1, :c)"), {"c": body["cif"]})
        return {"ok": "yes"}

    app = create_app(settings, title="t", description="t", routers=[router])
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")
    return client, engine


@pytest.mark.parametrize("url", ["/api/x/search?q=a%00b", "/api/x/search?q=%1b[31m", "/api/x/search?q%00=1",
                                 "/api/x/items/ab%00c", "/api/x/items/a%7fb"])
async def test_control_characters_in_path_or_query_are_refused_before_the_handler(url: str) -> None:
    calls: list[str] = []
    client, _ = _app(calls)
    async with client:
        r = await client.get(url)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_characters"
    assert r.json()["error"]["message"].startswith("Parametrii") or "conține" in r.json()["error"]["message"]
    assert r.headers["x-request-id"]
    assert calls == []


async def test_ordinary_text_including_diacritics_passes() -> None:
    calls: list[str] = []
    client, _ = _app(calls)
    async with client:
        r = await client.get("/api/x/search", params={"q": "Nan", "amount_min": "12.5"})
        r2 = await client.post("/api/x/items", json={"text": "Str. Lungă 1\nBl. A\tSc. 2", "n": 2**63 - 1})
    assert r.status_code == 200 and r2.status_code == 200, (r.text, r2.text)
    assert calls == ["search", "create"]


@pytest.mark.parametrize("value", ["-1e400", "1e400", "+1.5e99999", "-.1e310"])
async def test_non_finite_numbers_in_the_query_are_refused(value: str) -> None:
    calls: list[str] = []
    client, _ = _app(calls)
    async with client:
        r = await client.get("/api/x/search", params={"amount_min": value})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "number_out_of_range"
    assert calls == []


@pytest.mark.parametrize("raw", ['{"text": "a\\u0000b"}', '{"text": "\\ud800"}', '{"text": "x", "n": 1e400}',
                                 '{"text": "x", "n": NaN}', '{"text": "x", "n": 99999999999999999999}',
                                 '{"te\\u0001xt": "x"}'])
async def test_json_bodies_with_what_no_column_holds_are_refused(raw: str) -> None:
    calls: list[str] = []
    client, _ = _app(calls)
    async with client:
        r = await client.post("/api/x/items", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] in ("invalid_characters", "number_out_of_range")
    assert calls == []


async def test_an_unexpected_exception_is_a_500_with_the_request_id_logged_with_its_traceback(
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("hygiene")
    calls: list[str] = []
    client, _ = _app(calls)
    async with client:
        r = await client.get("/api/x/boom", headers={"X-Request-ID": "req-42", "Authorization": "Bearer sekret.tok"})
        r2 = await client.get("/api/x/boom", headers={"X-Request-ID": "bad\tid"})
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"
    assert r.json()["error"]["details"]["request_id"] == "req-42" == r.headers["x-request-id"]
    rid2 = r2.headers["x-request-id"]
    assert rid2 != "bad\tid" and r2.json()["error"]["details"]["request_id"] == rid2
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    logged = [x for x in lines if x.get("msg") == "unexpected error" and x.get("request_id") == "req-42"]
    assert logged, lines
    assert "RuntimeError: the handler broke" in logged[0]["exception"]
    assert "Traceback" in logged[0]["exception"]
    assert "sekret" not in json.dumps(lines)
    structlog.reset_defaults()
    logging.getLogger().handlers = []


async def test_values_the_database_refuses_as_data_are_422_and_leave_nothing(fresh_database: str) -> None:
    calls: list[str] = []
    client, engine = _app(calls, fresh_database)
    async with engine.begin() as conn:  # type: ignore[attr-defined]
        await conn.execute(text("CREATE TABLE t (id bigint PRIMARY KEY, cif varchar(32))"))
    async with client:
        beyond = await client.get(f"/api/x/rows/{2**63}")
        long_cif = await client.post("/api/x/rows", json={"cif": "1" * 33})
        fine = await client.get("/api/x/rows/7")
    assert beyond.status_code == 422 and beyond.json()["error"]["code"] == "invalid_value", beyond.text
    assert long_cif.status_code == 422 and long_cif.json()["error"]["code"] == "invalid_value", long_cif.text
    assert fine.status_code == 200
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 0
    await engine.dispose()  # type: ignore[attr-defined]


class TcpProxy:
    """A TCP forwarder to PostgreSQL that the test can take away (closing every connection) and bring back."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def down(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.close()
        self.writers.clear()
        await self.server.wait_closed()
        self.server = None


async def test_readiness_follows_the_database_and_recovers_by_itself(fresh_database: str) -> None:
    base = make_settings(database=fresh_database)
    proxy = TcpProxy(base.pg_port)
    await proxy.up()
    settings = make_settings(service="hygiene", database=fresh_database, pg_port=proxy.port)
    runtime = ServiceRuntime(settings, _outbox())  # never started: no Kafka needed
    app = create_app(settings, title="t", description="t", routers=[])
    app.state.readiness.append(runtime.check_database)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
        assert (await client.get("/health/ready")).status_code == 200
        await proxy.down()
        down = await client.get("/health/ready")
        assert down.status_code == 503, down.text
        assert "check_database" in down.json()["failures"]
        assert (await client.get("/health/live")).status_code == 200
        await proxy.up()
        for _ in range(40):
            if (await client.get("/health/ready")).status_code == 200:
                break
            await asyncio.sleep(0.25)
        else:
            raise AssertionError("readiness did not come back with the database")
    await proxy.down()
    await runtime.engine.dispose()


def _outbox():  # type: ignore[no-untyped-def]
    from spvhub_common.messaging import add_messaging_tables
    return add_messaging_tables(MetaData())[0]


