"""A natural person registered by CNP: known everywhere by its person key, the CNP stored and published only sealed,
shown in clear to the company's verified members and masked to anyone else; a CNP in an address is refused."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pfkit
import pytest
from pfkit import FIRM_A, Env, make_env, running_env
from spvhub_common.events.invitations import InvitationAccepted, InvitationClaimed, InvitationSent
from spvhub_common.ids import cnp_control_digit, mask_cnp
from spvhub_portfolio.adapters.orm import companies, outbox
from sqlalchemy import select

BASE_SCENARIO = pfkit.scenario
CNP = "185031512456" + str(cnp_control_digit("185031512456"))
OTHER_CNP = "285031512456" + str(cnp_control_digit("285031512456"))


def person_scenario() -> dict[str, Any]:
    """The portfolio scenario plus a natural person whose certificate has SPV rights on their own CNP."""
    raw = BASE_SCENARIO()
    raw["certificates"].append({"id": "person", "name": "STOICA RADU MIHAI", "cnp": CNP,
                                "serial": "34:00:00:00:00:00:00:00:00:00:00:00:00:00:00:0c", "rights": [CNP]})
    return raw


@pytest.fixture
async def penv(fresh_database: str, topic_prefix: str, kafka_up: str,
               monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    monkeypatch.setattr(pfkit, "scenario", person_scenario)
    async with running_env(fresh_database, topic_prefix) as e:
        yield e


async def _register(env: Env, user: str, cnp: str = CNP, **body: Any) -> dict[str, Any]:
    r = await env.api.post("/api/portfolio/companies", json={"cif": cnp, **body}, headers=env.headers(user))
    assert r.status_code in (200, 201), r.text
    return r.json()  # type: ignore[no-any-return]


async def _raw_outbox(env: Env) -> list[bytes]:
    async with env.runtime.uow() as uow:
        return [bytes(p) for p in (await uow.session.execute(select(outbox.c.payload))).scalars()]


async def _count_outbox(env: Env) -> int:
    return len(await _raw_outbox(env))


async def test_registration_by_cnp_keeps_the_cnp_sealed_and_out_of_every_event(penv: Env) -> None:
    env = penv
    key = env.deps.pii.key_of(CNP)
    c = await _register(env, "pf", name="Stoica Radu Mihai")
    assert c["cif"] == key and c["kind"] == "cnp" and c["role"] == "owner" and c["verification"] == "unverified"
    assert c["name"] == "Stoica Radu Mihai" and c["tax_id"] == mask_cnp(CNP)  # unverified: masked
    assert env.emulator_app.state.emulator.counters.cui.get(CNP) is None  # no registry call by CNP
    # the column holds the CNP sealed to its key, never in clear
    async with env.runtime.uow() as uow:
        sealed = (await uow.session.execute(select(companies.c.cnp_sealed).where(companies.c.cif == key))).scalar()
        assert (await uow.session.execute(select(companies.c.cif).where(companies.c.cif == CNP))).first() is None
    assert sealed and CNP not in sealed and env.deps.pii.unseal(sealed, key) == CNP
    [reg] = [d for _, d in await env.events("portfolio.company-registered")]
    assert reg["cif"] == key and reg["cnp_sealed"] and env.deps.pii.unseal(reg["cnp_sealed"], key) == CNP
    assert reg["name"] == "Stoica Radu Mihai"
    # no payload written by the service carries the clear CNP (nor its birth-date digits)
    raws = await _raw_outbox(env)
    assert raws and not any(CNP.encode() in p or CNP[1:7].encode() in p for p in raws)
    # the same person registering again changes nothing; without a name the default is Romanian
    again = await env.api.post("/api/portfolio/companies", json={"cif": CNP}, headers=env.headers("pf"))
    assert again.status_code == 200 and again.json()["cif"] == key
    other = await _register(env, "pf2", OTHER_CNP)
    assert other["name"] == "Persoană fizică" and other["cif"] == env.deps.pii.key_of(OTHER_CNP)


async def test_the_cnp_is_shown_to_verified_members_only(penv: Env) -> None:
    env = penv
    key = env.deps.pii.key_of(CNP)
    await _register(env, "pf")
    await env.verify("pf", key)
    r = await env.api.get(f"/api/portfolio/companies/{key}", headers=env.headers("pf"))
    assert r.status_code == 200 and r.json()["tax_id"] == CNP and r.json()["kind"] == "cnp"
    [mine] = (await env.api.get("/api/portfolio/companies", headers=env.headers("pf"))).json()["companies"]
    assert mine["cif"] == key and mine["tax_id"] == CNP
    # a second registrant (a join request, unverified) sees it masked
    joined = await _register(env, "late")
    assert joined["role"] == "member" and joined["tax_id"] == mask_cnp(CNP)
    r = await env.api.get(f"/api/portfolio/companies/{key}", headers=env.headers("late"))
    assert r.status_code == 200 and r.json()["tax_id"] == mask_cnp(CNP)
    # the person key as typed registers nothing new and gives the same company
    r = await env.api.post("/api/portfolio/companies", json={"cif": key.lower()}, headers=env.headers("pf"))
    assert r.status_code == 200 and r.json()["cif"] == key
    # a CIF company keeps showing its CIF
    firm = await env.register("fa", FIRM_A)
    assert firm["kind"] == "cif" and firm["tax_id"] == FIRM_A


async def test_a_collaborating_firm_sees_the_cnp_masked_and_a_stranger_nothing(penv: Env) -> None:
    env = penv
    from datetime import timedelta
    key = env.deps.pii.key_of(CNP)
    await _register(env, "pf")
    await env.verify("pf", key)
    await env.register("fa", FIRM_A)
    now = env.deps.clock.now()
    await env.handle(InvitationSent(invitation_id="inv-pf", firm_cif=FIRM_A, client_cif=key, email="pf@x.ro",
                                    name="Stoica", expires_at=now + timedelta(days=15)))
    await env.handle(InvitationClaimed(invitation_id="inv-pf", firm_cif=FIRM_A, client_cif=key, user_id="pf"))
    await env.handle(InvitationAccepted(invitation_id="inv-pf", firm_cif=FIRM_A, client_cif=key, user_id="pf"))
    r = await env.api.get(f"/api/portfolio/companies/{key}", headers=env.headers("fa"))
    assert r.status_code == 200, r.text
    assert r.json()["relation"] == "client" and r.json()["tax_id"] == mask_cnp(CNP)
    listed = {c["cif"]: c for c in (await env.api.get("/api/portfolio/companies",
                                                      headers=env.headers("fa"))).json()["companies"]}
    assert listed[key]["tax_id"] == mask_cnp(CNP) and listed[key]["relation"] == "client"
    # the members page of the person's company is its own people's business
    r = await env.api.get(f"/api/portfolio/companies/{key}/members", headers=env.headers("pf"))
    assert r.status_code == 200 and [m["user_id"] for m in r.json()["items"]] == ["pf"]
    # a stranger: refused, nothing written
    before = await _count_outbox(env)
    for method, path, body in (("GET", f"/api/portfolio/companies/{key}", None),
                               ("PATCH", f"/api/portfolio/companies/{key}", {"provides_accounting_services": True}),
                               ("GET", f"/api/portfolio/companies/{key}/members", None)):
        r = await env.api.request(method, path, json=body, headers=env.headers("stranger"))
        assert r.status_code == 403, (path, r.text)
        assert CNP not in r.text
    assert await _count_outbox(env) == before


async def test_a_cnp_in_an_address_is_refused_and_nothing_is_written(penv: Env) -> None:
    env = penv
    key = env.deps.pii.key_of(CNP)
    await _register(env, "pf")
    await env.verify("pf", key)
    await env.user("other")
    before = await _count_outbox(env)
    calls = (("GET", f"/api/portfolio/companies/{CNP}", None),
             ("PATCH", f"/api/portfolio/companies/{CNP}", {"provides_accounting_services": True}),
             ("GET", f"/api/portfolio/companies/{CNP}/members", None),
             ("POST", f"/api/portfolio/companies/{CNP}/members", {"email": "other@example.test", "role": "member"}),
             ("GET", f"/api/portfolio/companies/{CNP}/collaborations", None),
             ("GET", f"/api/portfolio/registry/{CNP}", None))
    for method, path, body in calls:
        r = await env.api.request(method, path, json=body, headers=env.headers("pf"))
        assert r.status_code == 422 and r.json()["error"]["code"] == "cnp_in_url", (path, r.text)
        assert "CNP" in r.json()["error"]["message"]
    assert await _count_outbox(env) == before
    r = await env.api.get(f"/api/portfolio/companies/{key}/members", headers=env.headers("pf"))
    assert [m["user_id"] for m in r.json()["items"]] == ["pf"]
    # a mistyped CNP (wrong control digit) is refused at registration with the CIF codes, nothing written
    bad = CNP[:-1] + str((int(CNP[-1]) + 1) % 10)
    r = await env.api.post("/api/portfolio/companies", json={"cif": bad}, headers=env.headers("x"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "cif_bad_control_digit"
    # a person key nobody registered with a CNP cannot be registered by the key alone
    stray = env.deps.pii.key_of(OTHER_CNP)
    r = await env.api.post("/api/portfolio/companies", json={"cif": stray}, headers=env.headers("x"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "cnp_required"
    assert await _count_outbox(env) == before


async def test_an_anaf_authorization_verifies_the_person_and_entitlements_carry_the_sealed_cnp(penv: Env) -> None:
    env = penv
    key = env.deps.pii.key_of(CNP)
    await _register(env, "pf")
    await env.connect("conn-pf", "person", key, "pf")  # what auth.connection-authorized does for the person key
    r = await env.api.get(f"/api/portfolio/companies/{key}", headers=env.headers("pf"))
    assert r.json()["verification"] == "verified" and r.json()["tax_id"] == CNP
    [ent] = [d for _, d in await env.events("portfolio.entitlements-changed")]
    assert ent["cif"] == key and [c["connection_id"] for c in ent["connections"]] == ["conn-pf"]
    assert ent["cnp_sealed"] and env.deps.pii.unseal(ent["cnp_sealed"], key) == CNP
    # the discovery asked ANAF with the CNP (the only way ANAF knows the person) and recorded the key
    assert env.emulator_app.state.emulator.counters.cui[CNP]["listaMesajeFactura"] >= 1
    rights = [d for _, d in await env.events("portfolio.rights-discovered")]
    assert rights and rights[-1]["holder_cif"] == key and key in rights[-1]["cifs"]
    raws = await _raw_outbox(env)
    assert not any(CNP.encode() in p for p in raws)


async def test_a_cnp_in_an_inventory_becomes_the_person_key() -> None:
    from spvhub_common.pii import DEV_PII_SECRET, PersonIds
    from spvhub_portfolio import domain
    ids = PersonIds(DEV_PII_SECRET)
    key = ids.key_of(CNP)
    inv = domain.inventory_from_cui_field(FIRM_A, f"{FIRM_A},{CNP},123", ids.key_of_anaf_id)
    assert inv == [FIRM_A, key]  # "123" is not a valid CIF: left out
    assert domain.inventory_from_cui_field(key, CNP, ids.key_of_anaf_id) is None  # an echo of the person asked


async def test_on_kafka_the_registration_carries_the_key_and_the_sealed_cnp_only(
        fresh_database: str, topic_prefix: str, kafka_up: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import uuid

    from aiokafka import AIOKafkaConsumer
    monkeypatch.setattr(pfkit, "scenario", person_scenario)
    env = await make_env(fresh_database, topic_prefix, live=True)
    await env.runtime.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_up, auto_offset_reset="earliest",
                                group_id=f"reader-{uuid.uuid4().hex[:6]}", enable_auto_commit=False,
                                metadata_max_age_ms=1000)
    consumer.subscribe(pattern=f"^{topic_prefix.replace('.', '[.]')}portfolio[.].*")
    await consumer.start()
    try:
        key = env.deps.pii.key_of(CNP)
        await _register(env, "pf", name="Stoica Radu Mihai")
        raw: list[tuple[str, bytes, bytes]] = []
        deadline = asyncio.get_running_loop().time() + 40
        while not any(t.endswith("portfolio.company-registered") for t, _, _ in raw):
            assert asyncio.get_running_loop().time() < deadline, f"nothing on Kafka; seen {[t for t, _, _ in raw]}"
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                raw.extend((m.topic, m.key or b"", m.value or b"") for m in msgs)
        [(_, k, v)] = [(t, k, v) for t, k, v in raw if t.endswith("portfolio.company-registered")]
        assert k == key.encode() and json.loads(v)["data"]["cif"] == key
        sealed = json.loads(v)["data"]["cnp_sealed"]
        assert env.deps.pii.unseal(sealed, key) == CNP
        assert not any(CNP.encode() in k + v or CNP[1:7].encode() in v for _, k, v in raw)
    finally:
        await consumer.stop()
        await env.runtime.stop()
        await env.api.aclose()
        await env.emulator.aclose()


async def test_a_person_known_first_by_key_learns_its_cnp_and_entitlements_carry_it(penv: Env) -> None:
    """A firm's certificate lists the person's CNP in its inventory and the person becomes its client through an
    invitation (the company known by its key only); when the person then types the CNP, it is stored sealed and
    the entitlements are published again with it."""
    from datetime import timedelta
    env = penv
    key = env.deps.pii.key_of(CNP)
    await env.register("fa", FIRM_A)
    await env.admin("/__admin/certificates/firm_a/rights", {"grant": [CNP]})
    await env.admin("/__admin/invoices", {"seller": FIRM_A, "buyer": pfkit.CLIENTS_A[0]})  # lists carry the inventory
    await env.connect("conn-a", "firm_a", FIRM_A, "fa")
    rights = [d for _, d in await env.events("portfolio.rights-discovered")]
    assert key in rights[-1]["cifs"] and CNP not in rights[-1]["cifs"]
    # discovery now keeps the inventory's CNP sealed; a key met before that (or only through an invitation) has none
    async with env.runtime.uow() as uow:
        await uow.session.execute(companies.update().where(companies.c.cif == key).values(cnp_sealed=None))
        await uow.commit()
    now = env.deps.clock.now()
    await env.handle(InvitationSent(invitation_id="inv-k", firm_cif=FIRM_A, client_cif=key, email="pf@x.ro",
                                    name="Stoica", expires_at=now + timedelta(days=15)))
    await env.handle(InvitationClaimed(invitation_id="inv-k", firm_cif=FIRM_A, client_cif=key, user_id="pf"))
    await env.verify("pf", key)  # a link never verifies a natural person: their own authorization does
    await env.handle(InvitationAccepted(invitation_id="inv-k", firm_cif=FIRM_A, client_cif=key, user_id="pf"))
    before = [d for _, d in await env.events("portfolio.entitlements-changed") if d["cif"] == key]
    assert before and before[-1]["cnp_sealed"] is None and before[-1]["connections"]
    r = await env.api.get(f"/api/portfolio/companies/{key}", headers=env.headers("pf"))
    assert r.json()["tax_id"] == key  # the CNP is not known yet: the key is all there is to show
    r = await env.api.post("/api/portfolio/companies", json={"cif": CNP, "name": "Stoica Radu"},
                           headers=env.headers("pf"))
    assert r.status_code == 200, r.text
    assert r.json()["cif"] == key and r.json()["name"] == "Stoica Radu"
    after = [d for _, d in await env.events("portfolio.entitlements-changed") if d["cif"] == key]
    assert len(after) == len(before) + 1 and after[-1]["connections"] == before[-1]["connections"]
    assert env.deps.pii.unseal(after[-1]["cnp_sealed"], key) == CNP
    assert not any(CNP.encode() in p for p in await _raw_outbox(env))
