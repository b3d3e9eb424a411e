"""A natural person filing under their CNP, synced by person key: the CNP is unsealed only for ANAF's `cif=`, and
the ledger, invoice rows, blobs, outbox events and logs name the person by key. The emulator's demo person
(certificate persoana-fizica) against the real PostgreSQL, MinIO and Kafka."""
from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import pytest
from anaf_emulator import create_app as create_emulator
from anaf_emulator.scenario import _load_raw
from efactura_kit import CLIENT_ID, CLIENT_SECRET, Harness, company_cifs, efactura_settings, scenario
from spvhub_common.anaf.errors import DailyLimitReached, NoRights
from spvhub_common.events.portfolio import EntitledConnection, EntitlementsChanged
from spvhub_common.pii import PersonIds
from spvhub_efactura.adapters import queries
from spvhub_efactura.adapters.orm import companies, invoices, messages, outbox
from spvhub_efactura.handlers import on_entitlements_changed, sync_health
from spvhub_efactura.sync.persons import keyed_error, keyed_id, keyed_item, keyed_text
from sqlalchemy import select

CNP = "1850315124561"  # the demo's natural person (fictional)
OTHER_CNP = "2900101123450"
CERT = "persoana-fizica"


def demo_scenario() -> dict[str, Any]:
    """The shipped demo, on a fixed clock and with the test kit's OAuth application (its tokens)."""
    raw = json.loads(json.dumps(_load_raw("demo.json")))
    raw["clock"] = {"start": "2026-07-01T10:00:00+03:00"}
    raw["applications"] = [{"name": "spvhub", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                            "redirect_uris": ["https://client.example/cb"], "services": ["E-Factura"]}]
    return raw


# What spvhub_common.logging keeps below WARNING out of a service's logs (httpx's INFO line quotes every URL,
# ANAF's `cif=` included); the test captures everything else at DEBUG.
SILENCED = ("aiokafka", "kafka", "uvicorn.access", "httpx", "httpcore")


def service_logs(caplog: Any) -> str:
    return "\n".join(f"{r.name} {r.getMessage()} {r.__dict__}" for r in caplog.records
                     if not (r.name.split(".")[0] in SILENCED and r.levelno < logging.WARNING))


async def entitle_person(h: Harness, key: str, sealed: str | None) -> None:
    """portfolio.entitlements-changed for the person key, as the consumer applies it."""
    async with h.runtime.uow() as uow:
        await on_entitlements_changed(EntitlementsChanged(
            cif=key, cnp_sealed=sealed,
            connections=[EntitledConnection(connection_id=CERT, holder_cif=key, services=["efactura"],
                                            may_file=True)]), None, uow, None)
        await uow.commit()


def plain(value: Any) -> dict[str, Any]:
    """A sync health answer as a dict (a mapping or a dataclass, as queries returns it)."""
    return value if isinstance(value, dict) else dataclasses.asdict(value)


async def rows(h: Harness, table: Any) -> list[dict[str, Any]]:
    async with h.runtime.sessions() as s:
        return [dict(r) for r in (await s.execute(select(table))).mappings().all()]


async def test_a_person_key_syncs_the_persons_messages_and_the_cnp_stays_out(
        fresh_database: str, topic_prefix: str, minio_up: None, kafka_up: str, caplog, capsys) -> None:
    caplog.set_level(logging.DEBUG)
    emulator = create_emulator(demo_scenario(), admin=True)
    state = emulator.state.emulator
    settings = efactura_settings(fresh_database, topic_prefix)
    ids = PersonIds.from_settings(settings)
    key = ids.key_of(CNP)
    async with Harness(settings, emulator) as h:
        await entitle_person(h, key, ids.seal(CNP))
        async with h.runtime.sessions() as s:
            stored = (await s.execute(select(companies.c.cnp_sealed).where(companies.c.cif == key))).scalar()
            assert stored and CNP not in stored
            assert await queries.anaf_id_of(s, key, ids) == CNP  # what submissions send as cif=
            assert await queries.anaf_id_of(s, "18453276", ids) == "18453276"  # a CIF is its own ANAF id
        assert await h.sync.anaf_id_of(key) == CNP
        await h.sync_until_settled([key])

        # ANAF was asked with the clear CNP (the emulator counted the lists under it)
        assert state.counters.cui[CNP]["listaMesajePaginatieFactura"] >= 1
        expected = {str(m.id) for m in state.by_cif[CNP]}
        ledger = await rows(h, messages)
        assert {r["message_id"] for r in ledger if r["cif"] == key and r["state"] == "archived"} == expected
        assert not [r for r in ledger if r["cif"] != key]  # nothing under the clear CNP
        docs = await rows(h, invoices)
        assert {r["message_id"] for r in docs} == expected and {r["cif"] for r in docs} == {key}
        sent = [r for r in docs if r["direction"] == "sent" and r["document_type"] in ("invoice", "credit_note")]
        received = [r for r in docs if r["direction"] == "received"]
        assert len(sent) == 3 and len(received) == 2, [(r["direction"], r["document_type"]) for r in docs]
        assert {r["seller_cif"] for r in sent} == {key} and {r["buyer_cif"] for r in received} == {key}
        assert all(r["zip_key"].startswith(f"efactura/{key}/") for r in docs)
        for table in (ledger, docs, await rows(h, companies)):
            assert CNP not in json.dumps(table, default=str)

        events = await rows(h, outbox)
        topics = {e["topic"] for e in events}
        assert any(t.endswith("efactura.invoice-downloaded") for t in topics)
        assert any(t.endswith("efactura.invoice-error-received") for t in topics)
        assert any(t.endswith("efactura.sync-completed") for t in topics)
        assert CNP not in json.dumps(events, default=str)
        assert all(e["key"] in (key, None) for e in events if "key" in e)

        [health] = [plain(x) for x in await sync_health(h.deps, [key])]
        assert health["status"] == "active" and health["errors"]["last_error"] is None
    out = capsys.readouterr()
    logs = service_logs(caplog) + out.out + out.err
    assert "efactura.listaMesajePaginatieFactura" in logs  # the capture holds the service's own log lines
    assert CNP not in logs


@pytest.mark.parametrize("case", ["missing", "another_persons", "garbage"])
async def test_a_person_key_without_a_usable_sealed_cnp_pauses_with_a_clear_error(
        fresh_database: str, topic_prefix: str, minio_up: None, kafka_up: str, case: str, caplog, capsys) -> None:
    caplog.set_level(logging.DEBUG)
    emulator = create_emulator(demo_scenario(), admin=True)
    state = emulator.state.emulator
    settings = efactura_settings(fresh_database, topic_prefix)
    ids = PersonIds.from_settings(settings)
    key = ids.key_of(CNP)
    sealed = {"missing": None, "another_persons": ids.seal(OTHER_CNP), "garbage": "s1.bm90LWEtc2VhbGVkLWNucA"}[case]
    async with Harness(settings, emulator) as h:
        await entitle_person(h, key, sealed)
        assert await h.sync.tick() == [key]
        await h.sync.wait_idle()  # the sync ends (paused), nothing raised out of the scheduler

        async with h.runtime.sessions() as s:
            company = (await s.execute(select(companies).where(companies.c.cif == key))).mappings().one()
        code = "cnp_missing" if case == "missing" else "cnp_invalid"
        assert company["last_error"].startswith("SyncPaused: ")
        assert key in company["last_error"] and company["consecutive_failures"] == 1
        assert ("no CNP is known" if code == "cnp_missing" else "does not open") in company["last_error"]
        assert company["lease_owner"] is None and company["next_sync_at"] is not None  # released, tried again later
        assert not await rows(h, messages) and not await rows(h, invoices)
        assert not state.counters.cui.get(CNP)  # ANAF never asked, with no CNP or a wrong one
        assert not state.counters.cui.get(OTHER_CNP)
        # the company's sync health says why (the key, never the CNP)
        [health] = [plain(x) for x in await sync_health(h.deps, [key])]
        assert health["errors"]["last_error"] == company["last_error"]
        assert (health["status"], health["stop_reason"]) == ("paused", code)

        # portfolio sends the right sealed CNP: due at once, synced, active again
        await entitle_person(h, key, ids.seal(CNP))
        await h.sync_until_settled()
        assert {r["cif"] for r in await rows(h, messages)} == {key}
        [health] = [plain(x) for x in await sync_health(h.deps, [key])]
        assert (health["status"], health["stop_reason"], health["errors"]["last_error"]) == ("active", None, None)
    logs = service_logs(caplog) + capsys.readouterr().out
    assert key in logs and "SyncPaused" in logs
    assert CNP not in logs and OTHER_CNP not in logs


async def test_a_company_buying_from_a_person_names_the_seller_by_key(
        fresh_database: str, topic_prefix: str, minio_up: None, kafka_up: str) -> None:
    """The person's CNP reaches a company's inbox too (`detalii`, the document's seller): the company's ledger,
    invoice row and event carry the person's key."""
    raw = scenario(1)
    buyer = company_cifs(1)[0]
    raw["companies"].append({"cui": CNP, "name": "STOICA RADU MIHAI", "vat": False})
    emulator = create_emulator(raw, admin=True)
    settings = efactura_settings(fresh_database, topic_prefix)
    key = PersonIds.from_settings(settings).key_of(CNP)
    async with Harness(settings, emulator) as h:
        await h.admin("invoices", {"seller": CNP, "buyer": buyer, "number": "SRM-0200"})
        emulator.state.emulator.clock.advance(600)
        await h.grant("acc", [buyer])
        await h.sync_until_settled()
        [msg] = await rows(h, messages)
        assert msg["cif"] == buyer and f"cif_emitent={key}" in msg["detalii"]
        [doc] = await rows(h, invoices)
        assert doc["direction"] == "received" and doc["seller_cif"] == doc["partner_cif"] == key
        assert doc["buyer_cif"] == buyer
        events = await rows(h, outbox)
        assert events and CNP not in json.dumps(events, default=str)
        assert CNP not in json.dumps([msg, doc], default=str)


def test_ids_read_from_anaf_become_keys_and_nothing_else_changes() -> None:
    ids = PersonIds("test-only-pii-secret-of-32-bytes!")
    key = ids.key_of(CNP)
    assert keyed_id(ids, CNP) == key and keyed_id(ids, f" {CNP} ") == key
    assert keyed_id(ids, "18453276") == "18453276"
    assert keyed_id(ids, "0000000000000") == "0000000000000"  # the B2C placeholder names nobody
    assert keyed_id(ids, CNP[:12] + "0") == CNP[:12] + "0"  # not a valid CNP: left as ANAF wrote it
    assert keyed_id(ids, None) is None
    text = f"Factura cu id_incarcare=5001 emisa de cif_emitent={CNP} pentru cif_beneficiar=44166200"
    assert keyed_text(ids, text) == text.replace(CNP, key)
    assert keyed_text(ids, "id_incarcare=5001000123 data 202607011230") == "id_incarcare=5001000123 data 202607011230"
    item = {"id": "3001001571", "cif": CNP, "detalii": text, "tip": "FACTURA TRIMISA", "data_creare": "202607011230"}
    assert keyed_item(ids, item) == {**item, "cif": key, "detalii": text.replace(CNP, key)}
    plain = {"id": "3001001571", "cif": "18453276", "detalii": "x", "tip": "FACTURA TRIMISA"}
    assert keyed_item(ids, plain) is plain
    err = NoRights(CNP, f"Nu aveti drept in SPV pentru CIF={CNP}")
    assert keyed_error(ids, err) is err and err.text == f"Nu aveti drept in SPV pentru CIF={key}"
    assert err.cif == key and CNP not in str(err)
    limit = DailyLimitReached(f"lista_paginata:{CNP}", "S-au facut deja 1500 interogari", resets_at=None)
    assert keyed_error(ids, limit).scope == f"lista_paginata:{key}"
