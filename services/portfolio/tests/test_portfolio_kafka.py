"""End to end through Kafka: auth.connection-authorized consumed -> discovery -> portfolio.rights-discovered on
Kafka; invitation events -> collaboration and access grants; the running re-check job reports lost rights."""
from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pfkit import CLIENTS_A, FIRM_A, Env, make_env
from spvhub_common.events import encode, to_envelope
from spvhub_common.events.auth import ConnectionAuthorized
from spvhub_common.events.invitations import InvitationAccepted, InvitationClaimed
from spvhub_portfolio.adapters.orm import access_grants
from sqlalchemy import select

EXPECTED = sorted([FIRM_A, *CLIENTS_A], key=int)


@pytest.fixture
async def live(fresh_database: str, topic_prefix: str, kafka_up: str) -> AsyncIterator[Env]:
    env = await make_env(fresh_database, topic_prefix, live=True)
    await env.runtime.start()
    try:
        yield env
    finally:
        await env.runtime.stop()
        await env.api.aclose()
        await env.emulator.aclose()


class Topics:
    """Reads the prefixed portfolio topics from the beginning, accumulating what arrived."""

    def __init__(self, env: Env, bootstrap: str) -> None:
        self.prefix = env.settings.kafka_topic_prefix
        self.bootstrap = bootstrap
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, auto_offset_reset="earliest",
                                         group_id=f"reader-{uuid.uuid4().hex[:6]}", enable_auto_commit=False,
                                         metadata_max_age_ms=1000)
        self.consumer.subscribe(pattern=f"^{self.prefix.replace('.', '[.]')}portfolio[.].*")
        await self.consumer.start()

    async def wait_for(self, topic: str, pred: Any = lambda d: True, wait: float = 40) -> dict[str, Any]:
        assert self.consumer is not None
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            for t, d in self.seen:
                if t == topic and pred(d):
                    return d
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no {topic} on Kafka; seen {[t for t, _ in self.seen]}")
            for msgs in (await self.consumer.getmany(timeout_ms=500)).values():
                for m in msgs:
                    body = json.loads(m.value)
                    self.seen.append((m.topic.removeprefix(self.prefix), body["data"]))

    async def stop(self) -> None:
        if self.consumer:
            await self.consumer.stop()


async def produce(env: Env, bootstrap: str, ev: Any, source: str) -> None:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await p.start()
    try:
        await p.send_and_wait(env.settings.kafka_topic_prefix + ev.topic, encode(to_envelope(ev, source)),
                              key=ev.partition_key().encode())
    finally:
        await p.stop()


async def test_discovery_collaboration_and_recheck_through_kafka(live: Env, kafka_up: str) -> None:
    env = live
    topics = Topics(env, kafka_up)
    await topics.start()
    try:
        await env.register("fa", FIRM_A)
        await env.admin("/__admin/invoices", {"seller": FIRM_A, "buyer": CLIENTS_A[0]})
        env.connections["conn-k"] = {"certificate": "firm_a", "cif": FIRM_A}
        now = env.deps.clock.now()
        await produce(env, kafka_up, ConnectionAuthorized(
            connection_id="conn-k", company_cif=FIRM_A, user_id="fa", holder_name="POPA ION",
            certificate_serial="34:00", services=["E-Factura"], authorized_at=now,
            access_expires_at=now + timedelta(days=90), refresh_expires_at=now + timedelta(days=365),
            must_act_by=now + timedelta(days=700)), "auth")
        rd = await topics.wait_for("portfolio.rights-discovered")
        assert rd["cifs"] == EXPECTED and rd["connection_id"] == "conn-k"

        client = CLIENTS_A[7]
        await produce(env, kafka_up, InvitationClaimed(invitation_id="i1", firm_cif=FIRM_A, client_cif=client,
                                                       user_id="cl"), "invitations")
        await produce(env, kafka_up, InvitationAccepted(invitation_id="i1", firm_cif=FIRM_A, client_cif=client,
                                                        user_id="cl"), "invitations")
        await topics.wait_for("portfolio.collaboration-started", lambda d: d["client_cif"] == client)
        grant = await topics.wait_for("portfolio.access-changed",
                                      lambda d: d["cif"] == client and d["user_id"] == "fa")
        assert grant["granted"] and grant["role"] == "accountant" and grant["via_firm_cif"] == FIRM_A

        # portfolio's own copy of the read model follows the events like every other service's
        async def read_model() -> set[tuple[str, str]]:
            async with env.runtime.uow() as uow:
                return {(r[0], r[1]) for r in await uow.session.execute(
                    select(access_grants.c.user_id, access_grants.c.cif))}
        for _ in range(80):
            if {("fa", FIRM_A), ("fa", client), ("cl", client)} <= await read_model():
                break
            await asyncio.sleep(0.25)
        assert {("fa", FIRM_A), ("fa", client), ("cl", client)} <= await read_model()

        # rights removed at ANAF: the running job notices after a day and reports it
        await env.admin("/__admin/certificates/firm_a/rights", {"remove": [client]})
        await env.admin("/__admin/clock", {"advance_days": 1, "advance_seconds": 30})
        lost = await topics.wait_for("portfolio.access-lost", lambda d: d["cif"] == client)
        assert lost["reason"] == "spv_rights_removed" and lost["connection_id"] == "conn-k"
        rd2 = await topics.wait_for("portfolio.rights-discovered", lambda d: d["lost"] == [client])
        assert client not in rd2["cifs"] and len(rd2["cifs"]) == 39
    finally:
        await topics.stop()
