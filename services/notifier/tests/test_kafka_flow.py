"""The invitation journey with the real moving parts: both services' consumers, outbox relays and jobs
running against Kafka (prefixed topics), the e-mail sender job delivering to the SMTP capture."""
from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from ntfkit import INV_MIGRATIONS, NTF_MIGRATIONS, SERVICE_TOKEN, _settings
from spvhub_common.clock import ManualClock
from spvhub_common.db import drop_database, ensure_database
from spvhub_common.events import encode, to_envelope
from spvhub_common.events.auth import UserRegistered
from spvhub_common.events.portfolio import AccessChanged, CompanyRegistered, RightsDiscovered
from spvhub_common.migrate import upgrade_async
from spvhub_common.outbox import KafkaPublisher
from spvhub_devtools.devmail import DevMail
from spvhub_devtools.testtokens import TokenMinter
from spvhub_invitations.bootstrap import build as build_invitations
from spvhub_invitations.settings import Settings as InvSettings
from spvhub_notifier.adapters.invitations_client import HttpInvitationLinks
from spvhub_notifier.bootstrap import build as build_notifier
from spvhub_notifier.settings import Settings

FIRM, CLIENT = "11111110", "22222229"


async def eventually(fn: Callable[[], Awaitable[Any]], limit: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        got = await fn()
        if got:
            return got
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.2)


async def test_journey_over_kafka(fresh_database: str, kafka_up: str, topic_prefix: str):
    inv_db = f"t_{uuid.uuid4().hex[:12]}"
    clock = ManualClock(datetime(2025, 3, 1, 9, 0, tzinfo=UTC))
    mail = DevMail().start()
    inv_s = _settings(InvSettings, "invitations", inv_db, public_base_url="https://spv.example.ro",
                      kafka_topic_prefix=topic_prefix, access_wait_seconds=30.0)
    ntf_s = _settings(Settings, "notifier", fresh_database, smtp_port=mail.smtp_port, email_send_interval=0.2,
                      email_retry_base=0.1, email_retry_max=0.5, kafka_topic_prefix=topic_prefix,
                      public_base_url="https://spv.example.ro")
    await ensure_database(inv_s)
    await upgrade_async(inv_s, INV_MIGRATIONS)
    await upgrade_async(ntf_s, NTF_MIGRATIONS)
    minter = TokenMinter()
    inv_app, inv_rt = build_invitations(inv_s, clock=clock)
    inv_app.state.jwks = minter.verifier()
    inv = httpx.AsyncClient(transport=httpx.ASGITransport(app=inv_app), base_url="http://invitations")
    ntf_app, ntf_rt = build_notifier(ntf_s, clock=clock, links=HttpInvitationLinks(
        "http://invitations", SERVICE_TOKEN, client=inv))
    ntf_app.state.jwks = minter.verifier()
    ntf = httpx.AsyncClient(transport=httpx.ASGITransport(app=ntf_app), base_url="http://notifier")
    producer = KafkaPublisher(kafka_up, "test-producer")
    await producer.start()

    async def publish(ev: Any, source: str) -> None:
        await producer.send(topic_prefix + ev.topic, ev.partition_key().encode(), encode(to_envelope(ev, source)), [])

    try:
        # other services' facts, as they would publish them
        for ev in (CompanyRegistered(cif=FIRM, name="Contabil Expert SRL", provides_accounting_services=True),
                   CompanyRegistered(cif=CLIENT, name="Firma X SRL"),
                   AccessChanged(cif=FIRM, user_id="firm-user", role="owner", granted=True),
                   RightsDiscovered(connection_id="conn-1", holder_cif=FIRM, cifs=[FIRM, CLIENT])):
            await publish(ev, "portfolio")
        for ev in (UserRegistered(user_id="firm-user", email="office@contabilexpert.ro", name="Ion Contabilu"),
                   UserRegistered(user_id="client-user", email="ana@firmax.ro", name="Ana Popescu")):
            await publish(ev, "auth")
        await inv_rt.start()
        await ntf_rt.start()
        h_firm = minter.headers("firm-user")

        async def discovered() -> bool:
            r = await inv.get("/api/invitations/candidates", params={"firm_cif": FIRM}, headers=h_firm)
            return r.status_code == 200 and not r.json()["missing"] and len(r.json()["clients"]) == 1
        await eventually(discovered)

        r = await inv.post("/api/invitations", headers=h_firm, json={"firm_cif": FIRM, "invitations": [
            {"client_cif": CLIENT, "name": "Ana Popescu", "email": "ana@firmax.ro", "phone": "+40722123456"}]})
        assert r.status_code == 201, r.text
        inv_id = r.json()["results"][0]["invitation"]["id"]

        mails = await eventually(lambda: asyncio.sleep(0, mail.store.list("ana@firmax.ro")))
        token = re.search(r"join\?invitation=([A-Za-z0-9_-]+)", mails[0]["text"]).group(1)
        h_client = minter.headers("client-user")
        assert (await inv.post("/api/invitations/claim", json={"token": token}, headers=h_client)).status_code == 200
        # portfolio makes the claimer the client's verified owner (no verified owner yet, the firm's certificate
        # covers it); the answer below waits for that to reach invitations
        await publish(AccessChanged(cif=CLIENT, user_id="client-user", role="owner", granted=True), "portfolio")

        async def actionable() -> Any:
            items = (await ntf.get("/api/notifier/notifications", headers=h_client)).json()["items"]
            return [i for i in items if i["actions"]]
        item = (await eventually(actionable))[0]
        assert item["data"]["invitation_id"] == inv_id
        accept = next(a for a in item["actions"] if a["action"] == "accept")
        assert (await inv.post(accept["href"], headers=h_client)).status_code == 200

        firm_mail = await eventually(lambda: asyncio.sleep(0, mail.store.list("office@contabilexpert.ro")))
        assert firm_mail[0]["subject"] == "Firma X SRL a acceptat colaborarea"
        await eventually(lambda: asyncio.sleep(0, len(mail.store.list("ana@firmax.ro")) == 2))
        await asyncio.sleep(1.0)  # nothing more arrives
        assert len(mail.store.list()) == 3
    finally:
        await producer.stop()
        await ntf_rt.stop()
        await inv_rt.stop()
        await inv.aclose()
        await ntf.aclose()
        mail.stop()
        await drop_database(inv_s, inv_db)
