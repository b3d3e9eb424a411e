"""Integration tests: the production AnafClient against the ANAF emulator, in process (httpx.ASGITransport)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from anaf_emulator import create_app
from pydantic import SecretStr
from spvhub_common.anaf import (
    AnafClient,
    AnafConfig,
    BudgetExhausted,
    DailyLimitReached,
    InMemoryBudget,
    InvalidGrant,
    ManualClock,
    NoRights,
    Unauthorized,
)

pytestmark = pytest.mark.asyncio

CLIENT_ID = "6f97e46422c3ed35112f7e85aa6e15462d3b4f475669b753"
CLIENT_SECRET = "4d437da71feca3e0e4c761a890d25019902ba4e3114db833d1b63ef4bf52d8e5"
REDIRECT = "https://client.example/cb"
ACC_SERIAL = "34:00:00:00:00:00:00:00:00:00:00:00:00:00:00:01"
SELLER, BUYER, CARRIER = "1000017", "2000023", "3000030"


@dataclass
class Emu:
    admin: httpx.AsyncClient
    client: AnafClient
    budget: InMemoryBudget
    clock: ManualClock

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        resp = await self.admin.post(path, json=body)
        assert resp.status_code == 200, resp.text
        return resp.json()

    async def now_ms(self) -> int:
        return int((await self.admin.get("/__admin/clock")).json()["epoch_ms"])

    async def advance(self, seconds: float) -> None:
        await self.post("/__admin/clock", {"advance_seconds": seconds})

    async def token(self, certificate: str = "acc") -> str:
        body = await self.post("/__admin/tokens", {"client_id": CLIENT_ID, "certificate": certificate})
        return str(body["access_token"])


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[Emu]:
    app = create_app("minimal.json")
    transport = httpx.ASGITransport(app=app)
    admin = httpx.AsyncClient(transport=transport, base_url="http://emulator")
    now = datetime.fromisoformat((await admin.get("/__admin/clock")).json()["now"]).astimezone(UTC)
    clock = ManualClock(now)
    budget = InMemoryBudget(clock=clock)
    config = AnafConfig.for_emulator(
        "http://emulator", client_id=CLIENT_ID, client_secret=SecretStr(CLIENT_SECRET), redirect_uri=REDIRECT
    )
    client = AnafClient(config, budget, transport=transport, clock=clock)
    yield Emu(admin, client, budget, clock)
    await client.aclose()
    await admin.aclose()


async def test_oauth_code_exchange_and_refresh_rotation(emu: Emu) -> None:
    url = emu.client.authorize_url("s1")
    resp = await emu.admin.get(url + "&emulator_certificate=acc")
    assert resp.status_code == 302, resp.text
    callback = AnafClient.parse_authorize_callback(resp.headers["Location"])
    assert callback.state == "s1"
    tokens = await emu.client.exchange_code(callback.code)
    assert tokens.serial == ACC_SERIAL
    assert tokens.access_expires_at is not None and tokens.refresh_expires_at is not None
    assert (tokens.access_expires_at - (tokens.issued_at or tokens.access_expires_at)).days == 90
    assert tokens.refresh_expires_at > tokens.access_expires_at
    with pytest.raises(InvalidGrant):  # codes are single use
        await emu.client.exchange_code(callback.code)

    rotated = await emu.client.refresh(tokens.refresh_token)
    assert rotated.refresh_token != tokens.refresh_token and rotated.serial == ACC_SERIAL
    with pytest.raises(InvalidGrant):  # the used refresh token stops working (default switch)
        await emu.client.refresh(tokens.refresh_token)
    # The rotated access token works on e-Factura.
    await emu.client.list_messages(SELLER, 1, token=rotated.access_token)


async def test_paginated_listing_download_and_limits(emu: Emu) -> None:
    token = await emu.token()
    client = emu.client.with_token(token)
    await emu.post("/__admin/invoices/generate", {"cuis": [SELLER], "per_company_per_day": 12, "days": 50})
    await emu.advance(120)
    end = await emu.now_ms() - 60_000
    start = end - 55 * 86_400_000
    pages = [p async for p in client.iter_message_pages(SELLER, start, end)]
    ids = [m.id for p in pages for m in p.messages]
    expected = [
        m["id"] for m in (await emu.admin.get("/__admin/messages", params={"cif": SELLER})).json() if m["visible"]
    ]
    assert len(pages) >= 2 and pages[0].numar_total_pagini == len(pages)
    assert sorted(ids) == sorted(str(i) for i in expected) and len(set(ids)) == len(ids)
    assert pages[0].cui == {"1000017", "2000023", "4000046"}  # default switch: the rights inventory
    first = pages[0].messages[0]
    assert first.cif == SELLER and first.data_creare is not None and first.tip.startswith("FACTURA")

    data = await client.download(first.id)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert f"{first.id_solicitare}.xml" in names and f"semnatura_{first.id_solicitare}.xml" in names

    # The emulator's cap at 2: the third call gets ANAF's limit text, the fourth never leaves the process.
    resp = await emu.admin.post("/__admin/switches", json={"download_cap_per_message": 2})
    assert resp.status_code == 200
    await client.download(first.id)
    with pytest.raises(DailyLimitReached):
        await client.download(first.id)
    before = (await emu.admin.get("/__admin/counters")).json()["messages"][first.id]["descarcare"]
    with pytest.raises(BudgetExhausted):
        await client.download(first.id)
    after = (await emu.admin.get("/__admin/counters")).json()["messages"][first.id]["descarcare"]
    assert before == after


async def test_upload_and_state(emu: Emu) -> None:
    token = await emu.token()
    client = emu.client.with_token(token)
    created = await emu.post("/__admin/invoices", {"seller": SELLER, "buyer": BUYER, "kind": "invoice"})
    await emu.advance(60)
    seller_msg = next(m for m in created["messages"] if m["cif"] == SELLER)
    archive = zipfile.ZipFile(io.BytesIO(await client.download(seller_msg["id"])))
    xml = archive.read(f"{created['index_incarcare']}.xml")

    answer = await client.upload(xml, SELLER)
    index = answer.index
    assert index.isdigit() and answer.execution_status == "0" and answer.date_response
    assert f'index_incarcare="{index}"'.encode() in answer.raw  # ANAF's whole answer, as received
    state = await client.message_state(index)
    assert state.stare == "in prelucrare" and state.id_descarcare is None
    await emu.advance(5)
    state = await client.message_state(index)
    assert state.stare == "ok" and state.id_descarcare
    assert (await client.download(state.id_descarcare))[:2] == b"PK"


async def test_state_cap_is_read_from_anafs_text_and_held_until_midnight(emu: Emu) -> None:
    """ANAF's per-upload stareMesaj cap is published as 100, 10 and 20 (anaf-api.md §11.16): whatever the number,
    the client reads it from the refusal and the shared budget stops asking for that upload until midnight."""
    await emu.post("/__admin/switches", {"stare_cap_per_index": 3})
    client = emu.client.with_token(await emu.token())
    created = await emu.post("/__admin/invoices", {"seller": SELLER, "buyer": BUYER, "kind": "invoice"})
    index = created["index_incarcare"]
    for _ in range(3):
        assert (await client.message_state(index)).stare
    with pytest.raises(DailyLimitReached) as info:
        await client.message_state(index)
    assert info.value.limit == 3 and info.value.text == "S-au facut deja 3 descarcari de mesaj in cursul zilei"
    with pytest.raises(BudgetExhausted):
        await client.message_state(index)
    counted = (await emu.admin.get("/__admin/counters")).json()["uploads"][index]["stareMesaj"]
    assert counted == 3  # the refused fourth was not counted by ANAF, the fifth never reached it


async def test_rights_and_token_errors(emu: Emu) -> None:
    client = emu.client.with_token(await emu.token())
    with pytest.raises(NoRights) as info:
        await client.list_messages(CARRIER, 1)
    assert info.value.cif == CARRIER
    with pytest.raises(Unauthorized):
        await emu.client.list_messages(SELLER, 1, token="garbage")


async def test_etransport_info_and_registry(emu: Emu) -> None:
    carrier = emu.client.with_token(await emu.token("carrier"))
    today = datetime.fromisoformat((await emu.admin.get("/__admin/clock")).json()["now"]).date()
    made = await emu.post(
        "/__admin/transports", {"declarant": SELLER, "carrier": CARRIER, "data_transp": today.isoformat()}
    )
    await emu.advance(60)
    items = await carrier.transport_info(CARRIER)
    mine = [t for t in items if t.uit == made["uit"]]  # the scenario generates other transports too
    assert len(mine) == 1 and all(t.tr_cod == CARRIER for t in items)
    assert mine[0].cod_decl == SELLER and mine[0].data_exp_uit is not None

    found = await emu.client.registry_lookup([f"RO{SELLER}", 99999992])  # a valid CIF nobody registered
    assert [c.cui for c in found.found] == [SELLER] and found.found[0].denumire == "ALFA VANZARI SRL"
    assert found.not_found == ["99999992"]
