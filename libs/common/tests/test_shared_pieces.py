"""The pieces every service shares: the clock, the CIF/CNP normaliser, the cursor paging, the `Deps` dependency,
auth's token client, and the runtime's hooks, handler table routing, access read model and ANAF budget (the last
ones against the real PostgreSQL and Kafka)."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from spvhub_common import clock as clock_mod
from spvhub_common.access import access_table
from spvhub_common.anaf.budget import BudgetKind, BudgetLimits
from spvhub_common.clock import (
    BUCHAREST,
    MAX_SLEEP,
    FixedClock,
    FollowingClock,
    ManualClock,
    SystemClock,
    local_date,
    local_midnight,
    make_clock,
    next_local_midnight,
)
from spvhub_common.events.envelope import CloudEvent
from spvhub_common.events.portfolio import AccessChanged, CompanyRegistered
from spvhub_common.http import app_deps
from spvhub_common.ids import (
    InvalidTaxId,
    TaxId,
    is_valid_cif,
    mask_cnp,
    normalize_cif,
    parse_tax_id,
    strip_ro,
    valid_cif,
)
from spvhub_common.messaging import add_messaging_tables
from spvhub_common.paging import Page, decode_cursor, encode_cursor
from spvhub_common.runtime import EventHandler, ServiceRuntime
from spvhub_common.tokens import InternalToken, InternalTokenClient, TokenUnavailable
from spvhub_common.uow import SqlUnitOfWork
from spvhub_devtools.testing import make_settings
from sqlalchemy import MetaData, select, text

# --- clock ---------------------------------------------------------------------------------------


def test_system_clock_is_aware_utc_and_make_clock_picks_the_platform_clock() -> None:
    now = SystemClock().now()
    assert now.tzinfo is UTC and abs((now - datetime.now(UTC)).total_seconds()) < 1
    assert isinstance(make_clock(""), SystemClock)
    assert isinstance(make_clock("http://127.0.0.1:9/__admin/clock"), FollowingClock)


async def test_manual_clock_sleep_ends_when_advanced_past_its_deadline() -> None:
    clock = ManualClock(datetime(2026, 3, 1, 10, tzinfo=UTC))
    task = asyncio.create_task(clock.sleep(60))
    await asyncio.sleep(0)
    assert clock.sleepers == 1 and not task.done()
    clock.advance(59)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(minutes=1)  # timedelta keywords work too (the former FixedClock's way)
    await asyncio.wait_for(task, 1)
    assert clock.now() == datetime(2026, 3, 1, 10, 1, 59, tzinfo=UTC) and clock.sleepers == 0
    clock.at = datetime(2026, 3, 2, tzinfo=UTC)
    assert clock.now() == clock.at == datetime(2026, 3, 2, tzinfo=UTC)
    assert FixedClock is ManualClock
    with pytest.raises(ValueError):
        ManualClock(datetime(2026, 1, 1))


async def test_platform_clock_sleep_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    assert MAX_SLEEP == 5.0
    monkeypatch.setattr(clock_mod, "MAX_SLEEP", 0.05)
    t0 = time.monotonic()
    await SystemClock().sleep(3600)
    await FollowingClock("http://127.0.0.1:9/none").sleep(3600)
    await SystemClock().sleep(-5)
    assert time.monotonic() - t0 < 1.0


def test_following_clock_follows_a_remote_clock_and_its_freeze() -> None:
    frozen_at = datetime(2030, 6, 1, 12, tzinfo=UTC)

    def remote(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"epoch_ms": int(frozen_at.timestamp() * 1000), "frozen": True})

    clock = FollowingClock("http://emulator/__admin/clock")
    clock._http = httpx.Client(transport=httpx.MockTransport(remote))
    assert clock.now() == frozen_at


def test_bucharest_calendar_helpers() -> None:
    assert str(BUCHAREST) == "Europe/Bucharest"
    late = datetime(2026, 3, 1, 22, 30, tzinfo=UTC)  # 00:30 on 2 March in Bucharest (UTC+2)
    assert local_date(late) == date(2026, 3, 2)
    assert local_midnight(date(2026, 3, 2)) == datetime(2026, 3, 1, 22, tzinfo=UTC)
    assert next_local_midnight(late) == datetime(2026, 3, 2, 22, tzinfo=UTC)
    assert next_local_midnight(datetime(2026, 7, 1, 12, tzinfo=UTC)) == datetime(2026, 7, 1, 21, tzinfo=UTC)


def test_the_anaf_clock_module_is_the_same_clock() -> None:
    from spvhub_common.anaf import clock as anaf_clock

    assert anaf_clock.Clock is clock_mod.Clock and anaf_clock.ManualClock is ManualClock
    assert anaf_clock.SystemClock is SystemClock


# --- ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["RO 1000017", "ro1000017", " 1000017 ", "RO 10 000 17", "1000017", 1000017,
                                 "Ro1000017", "\t1000017\n"])
def test_normalize_cif_accepts_ro_and_spaces(raw: object) -> None:
    assert normalize_cif(raw) == "1000017"


@pytest.mark.parametrize("raw,code", [("", "cif_empty"), ("RO", "cif_empty"), (None, "cif_empty"),
                                      ("12a4", "cif_not_numeric"), ("RO-1000017", "cif_not_numeric"),
                                      ("1", "cif_bad_length"), ("12345678901", "cif_bad_length"),
                                      ("1000018", "cif_bad_control_digit"),
                                      ("RO14399841", "cif_bad_control_digit")])
def test_normalize_cif_refuses_with_stable_codes_in_both_languages(raw: object, code: str) -> None:
    with pytest.raises(InvalidTaxId) as e:
        normalize_cif(raw)
    assert e.value.code == code and e.value.status == 422
    assert e.value.message and e.value.messages["ro"] and e.value.messages["ro"] != e.value.message
    assert e.value.details == {"cif": raw}


def test_known_real_cif_and_leading_zeros() -> None:
    assert normalize_cif("RO14399840") == "14399840"  # a published CIF
    assert normalize_cif("0014399840") == "14399840"  # zeros weigh nothing in the control digit
    assert is_valid_cif("RO14399840") and not is_valid_cif("RO14399841")


@pytest.mark.parametrize("seed", [1, 7, 100001, "4399840"[:-1], 123456789])
def test_valid_cif_makes_cifs_the_normaliser_accepts(seed: int | str) -> None:
    cif = valid_cif(seed)
    assert normalize_cif(cif) == cif and 2 <= len(cif) <= 10
    with pytest.raises(ValueError):
        valid_cif(1234567890)


def test_parse_tax_id_tells_a_cnp_from_a_cif() -> None:
    assert parse_tax_id("RO 14399840") == TaxId("cif", "14399840")
    cnp = "1800101420010"  # 1 80 01 01 42 001 + control digit
    assert parse_tax_id(cnp) == TaxId(kind="cnp", value=cnp) and str(parse_tax_id(cnp)) == cnp
    with pytest.raises(InvalidTaxId) as e:
        parse_tax_id("1800101420011")
    assert e.value.code == "cif_bad_control_digit"
    with pytest.raises(InvalidTaxId):
        parse_tax_id("abc")


def test_mask_cnp_hides_the_birth_date() -> None:
    assert mask_cnp("1800101420010") == "1********0010"
    assert mask_cnp("12") == "1*" and mask_cnp("") == ""


def test_strip_ro_reads_anaf_data_without_refusing_anything() -> None:
    assert strip_ro(" RO 1000018 ") == "1000018"  # a bad control digit is kept: it is ANAF's data
    assert strip_ro("DE123456789") == "DE123456789" and strip_ro(None) == "" and strip_ro("ro12") == "12"


# --- paging --------------------------------------------------------------------------------------


def test_cursor_round_trip_is_opaque_and_url_safe() -> None:
    at = datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    uid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    cur = encode_cursor(at, 42, uid, "a/b+c", None)
    assert all(c.isalnum() or c in "-_" for c in cur)
    got = decode_cursor(cur, 5)
    assert datetime.fromisoformat(got[0]) == at and got[1:] == (42, str(uid), "a/b+c", None)


@pytest.mark.parametrize("raw", ["", "not base64!", "e30", encode_cursor(1, 2, 3), encode_cursor([1], 2), "%%%",
                                 "ŝ"])
def test_a_bad_cursor_is_422_invalid_cursor(raw: str) -> None:
    from spvhub_common.errors import AppError

    with pytest.raises(AppError) as e:
        decode_cursor(raw, 2)
    assert e.value.code == "invalid_cursor" and e.value.status == 422


def test_a_time_cursor_names_an_aware_instant_and_a_text_id() -> None:
    from spvhub_common.errors import AppError
    from spvhub_common.paging import decode_time_cursor

    at = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert decode_time_cursor(encode_cursor(at, "m-1")) == (at, "m-1")
    for bad in (encode_cursor(at.replace(tzinfo=None), "m-1"), encode_cursor(at, 7), encode_cursor("yesterday", "x"),
                encode_cursor(None, "x"), encode_cursor(at, "x", "y")):
        with pytest.raises(AppError) as e:
            decode_time_cursor(bad)
        assert e.value.code == "invalid_cursor"


def test_page_model_shape() -> None:
    page = Page[int](items=[1, 2], next_cursor=None)
    assert page.model_dump() == {"items": [1, 2], "next_cursor": None, "total": None}
    schema = Page[str].model_json_schema()
    assert set(schema["required"]) == {"items", "next_cursor"}


# --- http.app_deps -------------------------------------------------------------------------------


@dataclass
class GreetingDeps:
    greeting: str


ServiceDeps = Annotated[GreetingDeps, Depends(app_deps)]


def test_app_deps_reads_app_state_deps() -> None:
    app = FastAPI()
    app.state.deps = GreetingDeps("salut")

    @app.get("/")
    async def hello(deps: ServiceDeps) -> dict[str, str]:
        return {"greeting": deps.greeting}

    assert TestClient(app).get("/").json() == {"greeting": "salut"}


# --- tokens --------------------------------------------------------------------------------------


class FakeAuth:
    """auth's two internal endpoints as an httpx transport: counts calls, answers per connection."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self.serial = 0
        self.refresh_body = True

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path, dict(request.headers)))
        cid = request.url.path.split("/")[3]
        if cid == "gone":
            return httpx.Response(404, json={"error": {"code": "no_connection", "message": "No such connection."}})
        if cid == "reauth":
            return httpx.Response(409, json={"error": {"code": "reauthorization_required", "message": "Again."}})
        if cid == "broken":
            return httpx.Response(503, text="down")
        if request.method == "POST" and not self.refresh_body:
            return httpx.Response(200, json={"status": "refreshed"})
        self.serial += 1
        exp = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
        return httpx.Response(200, json={"connection_id": cid, "access_token": f"tok-{self.serial}",
                                         "expires_at": exp, "company_cif": "1000017", "status": "active"})


async def test_token_client_asks_auth_with_the_service_headers_and_caches_when_asked() -> None:
    auth = FakeAuth()
    client = InternalTokenClient("http://auth/", "s3cret", "efactura", transport=httpx.MockTransport(auth),
                                 max_age=60)
    tok = await client.access_token("c1")
    assert isinstance(tok, InternalToken) and tok.access_token == "tok-1" and tok.company_cif == "1000017"
    assert tok.expires_at is not None and tok.expires_at.tzinfo is not None and tok.status == "active"
    assert "tok-1" not in repr(tok) and "tok-1" not in str(tok)
    method, path, headers = auth.calls[0]
    assert (method, path) == ("GET", "/internal/connections/c1/access-token")
    assert headers["x-service-token"] == "s3cret" and headers["x-service-name"] == "efactura"
    assert (await client.access_token("c1")).access_token == "tok-1" and len(auth.calls) == 1  # cached
    refreshed = await client.refresh("c1")
    assert refreshed.access_token == "tok-2" and auth.calls[-1][:2] == ("POST", "/internal/connections/c1/refresh")
    auth.refresh_body = False  # a refresh answered without a token: the current one is fetched
    assert (await client.refresh("c1")).access_token == "tok-3" and auth.calls[-1][0] == "GET"
    await client.aclose()


async def test_token_client_without_cache_and_with_an_expiry_margin() -> None:
    auth = FakeAuth()
    plain = InternalTokenClient("http://auth", "t", "portfolio", transport=httpx.MockTransport(auth))
    await plain.access_token("c1")
    await plain.access_token("c1")
    assert len(auth.calls) == 2
    later = datetime.now(UTC) + timedelta(minutes=58)  # the token expires within the 5-minute margin
    margin = InternalTokenClient("http://auth", "t", "etransport", transport=httpx.MockTransport(auth),
                                 max_age=float("inf"), expiry_margin=timedelta(minutes=5), now=lambda: later)
    await margin.access_token("c2")
    await margin.access_token("c2")
    assert len(auth.calls) == 4
    margin.forget("c2")


@pytest.mark.parametrize("cid,reason,permanent,status", [("gone", "no_connection", True, 404),
                                                          ("reauth", "reauthorization_required", True, 409),
                                                          ("broken", "auth_error", False, 503)])
async def test_token_client_refusals(cid: str, reason: str, permanent: bool, status: int) -> None:
    client = InternalTokenClient("http://auth", "t", "efactura", transport=httpx.MockTransport(FakeAuth()))
    for call in (client.access_token, client.refresh):
        with pytest.raises(TokenUnavailable) as e:
            await call(cid)
        assert e.value.reason == reason and e.value.permanent is permanent and e.value.status_code == status


async def test_token_client_refuses_a_connection_auth_does_not_report_live_when_asked() -> None:
    statuses = {"c1": "renewing"}

    def auth(request: httpx.Request) -> httpx.Response:
        cid = request.url.path.split("/")[3]
        return httpx.Response(200, json={"connection_id": cid, "access_token": "tok", "expires_at": None,
                                         "status": statuses[cid]})

    strict = InternalTokenClient("http://auth", "t", "etransport", transport=httpx.MockTransport(auth),
                                 max_age=float("inf"), usable_statuses=("active", "expiring"))
    for call in (strict.access_token, strict.refresh):
        with pytest.raises(TokenUnavailable) as e:
            await call("c1")
        assert (e.value.reason, e.value.permanent, e.value.message) == ("reauthorization_required", True,
                                                                        "status renewing")
        assert e.value.status_code is None
    statuses["c1"] = "expiring"  # never cached while refused: the next ask sees auth's new answer
    assert (await strict.access_token("c1")).status == "expiring"
    lenient = InternalTokenClient("http://auth", "t", "portfolio", transport=httpx.MockTransport(auth))
    statuses["c1"] = "renewing"
    assert (await lenient.access_token("c1")).status == "renewing"  # off by default: the caller decides


async def test_token_client_unreachable_auth_is_transient() -> None:
    def down(_: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    client = InternalTokenClient("http://auth", "t", "efactura", transport=httpx.MockTransport(down))
    with pytest.raises(TokenUnavailable) as e:
        await client.access_token("c1")
    assert e.value.reason == "auth_error" and not e.value.permanent and e.value.status_code is None


# --- runtime (real PostgreSQL and Kafka) ---------------------------------------------------------

metadata = MetaData()
outbox_t, _inbox = add_messaging_tables(metadata)
grants_t = access_table(metadata)


async def _schema(rt: ServiceRuntime) -> None:
    async with rt.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


async def test_start_and_stop_hooks_run_in_order_and_stops_survive_failures(fresh_database: str) -> None:
    rt = ServiceRuntime(make_settings(service="hooks", database=fresh_database), outbox_t, start_consumers=False,
                        start_relay=False, start_jobs=False)
    seen: list[str] = []

    def hook(name: str, fail: bool = False) -> Any:
        async def fn() -> None:
            seen.append(name)
            if fail:
                raise RuntimeError(name)
        return fn

    rt.on_start(hook("start-a"))
    rt.on_start(hook("start-b"))
    rt.on_stop(hook("stop-a"))
    rt.on_stop(hook("stop-b", fail=True))
    rt.on_stop(hook("stop-c"))
    app = FastAPI()
    app.state.readiness = []
    async with rt.lifespan()(app):
        assert seen == ["start-a", "start-b"]
    assert seen == ["start-a", "start-b", "stop-c", "stop-b", "stop-a"]  # reverse order, past a failing one

    failing = ServiceRuntime(make_settings(service="hooks", database=fresh_database), outbox_t,
                             start_consumers=False, start_relay=False, start_jobs=False)
    seen.clear()
    failing.on_stop(hook("cleanup"))
    failing.on_start(hook("boom", fail=True))
    with pytest.raises(RuntimeError):
        async with failing.lifespan()(app):
            pass
    assert seen == ["boom", "cleanup"]  # a failed start still runs the stops registered so far


async def test_route_handlers_binds_deps_and_keeps_the_access_read_model(fresh_database: str, kafka_up: str,
                                                                         topic_prefix: str) -> None:
    settings = make_settings(service="skel", database=fresh_database, kafka_topic_prefix=topic_prefix)
    rt = ServiceRuntime(settings, outbox_t, start_jobs=False)
    await _schema(rt)
    seen: list[tuple[str, str]] = []

    @dataclass
    class Deps:
        name: str

    async def on_company(event: CompanyRegistered, envelope: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
        seen.append((event.cif, deps.name))

    table: dict[type, EventHandler] = {CompanyRegistered: on_company}
    models = rt.route_handlers("skel.read-models", table, Deps("skel-deps"))
    access = rt.keep_access_read_model(grants_t)
    assert models.name == "skel.read-models" and access.name == "skel.access-read-model"
    assert rt.keep_access_read_model(grants_t, group="skel.other").name == "skel.other"
    rt.consumers.pop()  # the third group only showed the name; it is not started

    app = FastAPI()
    app.state.readiness = []
    async with rt.lifespan()(app):
        async with rt.uow() as uow:
            uow.publish(CompanyRegistered(cif="1000017", name="Firma SRL"))
            uow.publish(AccessChanged(cif="1000017", user_id="u1", role="owner", granted=True, can_file=True))
            await uow.commit()
        deadline = time.monotonic() + 30
        row = None
        while time.monotonic() < deadline and (row is None or not seen):
            async with rt.engine.connect() as conn:
                row = (await conn.execute(select(grants_t).where(grants_t.c.user_id == "u1"))).first()
            await asyncio.sleep(0.2)
    assert seen == [("1000017", "skel-deps")]
    assert row is not None and row.cif == "1000017" and row.role == "owner" and row.can_file


async def test_anaf_budget_lives_in_its_database_and_counts_by_the_given_clock(fresh_database: str) -> None:
    budget_db = f"t_{uuid.uuid4().hex[:12]}"
    settings = make_settings(service="budget", database=fresh_database)
    settings.__dict__["anaf_budget_database"] = budget_db  # a service's setting; ServiceSettings has none
    rt = ServiceRuntime(settings, outbox_t, start_consumers=False, start_relay=False, start_jobs=False)
    clock = ManualClock(datetime(2026, 3, 1, 10, tzinfo=UTC))
    budget = rt.anaf_budget(BudgetLimits(per_minute=1000, daily={BudgetKind.EF_DOWNLOAD: 1}), clock)
    assert budget.clock is clock
    app = FastAPI()
    app.state.readiness = []
    try:
        async with rt.lifespan()(app):
            await budget.acquire(BudgetKind.EF_DOWNLOAD, "m1")
            from spvhub_common.anaf.errors import BudgetExhausted

            with pytest.raises(BudgetExhausted):
                await budget.acquire(BudgetKind.EF_DOWNLOAD, "m1")
            budget_engine = budget._engine
            assert budget_engine is not rt.engine
            async with budget_engine.connect() as conn:
                assert (await conn.execute(text("SELECT current_database()"))).scalar() == budget_db
        assert budget_engine.pool.checkedout() == 0  # disposed on stop
    finally:
        from spvhub_common.db import drop_database
        await drop_database(settings, budget_db)


def test_anaf_budget_defaults_to_the_platform_clock(fresh_database: str) -> None:
    settings = make_settings(service="budget", database=fresh_database)
    rt = ServiceRuntime(settings, outbox_t, start_consumers=False, start_relay=False, start_jobs=False)
    budget = rt.anaf_budget()
    assert isinstance(budget.clock, SystemClock) and budget._engine is rt.engine  # no budget database: its own


def test_cursor_json_is_compact() -> None:
    import base64

    cur = encode_cursor("x", 1)
    assert json.loads(base64.urlsafe_b64decode(cur + "=" * (-len(cur) % 4))) == ["x", 1]
