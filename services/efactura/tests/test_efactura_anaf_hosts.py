"""efactura reaches ANAF on the documented hosts: built with production settings (no emulator) and a recording
transport, the inbox's list and download and the submissions' upload, stareMesaj and validare go to
api.anaf.ro/prod/FCTEL/rest/..., ANAF's PDF service to webservicesp.anaf.ro."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from spvhub_common.anaf import UnlimitedBudget
from spvhub_common.clock import ManualClock
from spvhub_efactura.bootstrap import anaf_adapter
from spvhub_efactura.settings import Settings
from spvhub_efactura.submissions.anaf import CommonSubmissionAnaf

UPLOADED = (b'<header xmlns="mfp:anaf:dgti:spv:respUploadFisier:v1" dateResponse="202603101000" ExecutionStatus="0" '
            b'index_incarcare="5001"/>')


CLOCK = ManualClock(datetime(2026, 3, 10, 10, 0, tzinfo=UTC))


def answer(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path.endswith("/upload"):
        return httpx.Response(200, content=UPLOADED)
    if path.endswith("/stareMesaj"):
        return httpx.Response(200, content=b'<header xmlns="mfp:anaf:dgti:efactura:stareMesajFactura:v1" '
                                           b'stare="ok" id_descarcare="7001"/>')
    if path.endswith("/descarcare"):
        return httpx.Response(200, content=b"PK\x03\x04")
    if "/validare/" in path:
        return httpx.Response(200, json={"stare": "ok", "trace_id": "t"})
    if "/transformare/" in path:
        return httpx.Response(200, content=b"%PDF-1.4")
    return httpx.Response(200, json={"eroare": "Nu exista mesaje in intervalul selectat", "titlu": "Lista Mesaje"})


async def test_production_settings_send_each_call_to_its_documented_host() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    settings = Settings(env="test", anaf_env="prod", anaf_emulator_url="")
    inbox = anaf_adapter(settings, UnlimitedBudget(), CLOCK, httpx.MockTransport(record))  # as build() does
    outbox = CommonSubmissionAnaf(inbox.client)
    now = CLOCK.now()
    try:
        await inbox.list_page("tok", "1000017", now - timedelta(days=1), now, 1)
        await inbox.download("tok", "7001")
        await inbox.xml_to_pdf(b"<Invoice/>", credit_note=False)
        up = await outbox.upload("tok", b"<Invoice/>", "1000017", "UBL", extern=False, autofactura=False, b2c=False)
        await outbox.state("tok", up.index)
        await outbox.validate("tok", b"<Invoice/>", "UBL")
    finally:
        await inbox.aclose()
    assert up.index == "5001" and up.response == UPLOADED
    assert [f"{r.method} {r.url.copy_with(query=None)}" for r in seen] == [
        "GET https://api.anaf.ro/prod/FCTEL/rest/listaMesajePaginatieFactura",
        "GET https://api.anaf.ro/prod/FCTEL/rest/descarcare",
        "POST https://webservicesp.anaf.ro/prod/FCTEL/rest/transformare/FACT1",
        "POST https://api.anaf.ro/prod/FCTEL/rest/upload",
        "GET https://api.anaf.ro/prod/FCTEL/rest/stareMesaj",
        "POST https://api.anaf.ro/prod/FCTEL/rest/validare/FACT1"]
    assert "authorization" not in seen[2].headers  # the public PDF service gets no token
    assert all(r.headers.get("authorization") == "Bearer tok" for r in seen if r.url.host == "api.anaf.ro")
