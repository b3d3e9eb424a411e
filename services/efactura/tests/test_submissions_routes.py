"""The route of a submission read from its document, against the real PostgreSQL, Kafka and MinIO and the
in-process emulator: B2C buyers (a CNP, 13 zeros, no tax id in Romania) go through uploadb2c, a foreign buyer
without a Romanian tax id with extern=DA, one VAT-registered in Romania through upload without extern; a caller's
flag that contradicts the document is refused with nothing stored or uploaded. Plus the pure rules."""
from __future__ import annotations

import hashlib
import logging
import re
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from anaf_emulator import create_app as create_emulator
from anaf_emulator.ubl import InvoiceSpec, Line, Party, render
from efactura_kit import Harness, company_cifs, efactura_settings, new_emulator, scenario
from spvhub_common.errors import AppError
from spvhub_common.events.portfolio import EntitledConnection, EntitlementsChanged
from spvhub_common.ids import cnp_control_digit
from spvhub_common.pii import PersonIds
from spvhub_devtools.testtokens import TokenMinter
from spvhub_efactura.adapters.orm import outbox, submissions
from spvhub_efactura.handlers import on_entitlements_changed
from spvhub_efactura.submissions.routing import Buyer, RouteReason, decide, document_route
from sqlalchemy import func, select
from submissions_kit import drive, grant_access

API = "/api/efactura"


def cnp(body: str) -> str:
    return body + str(cnp_control_digit(body))


BUYER_CNP = cnp("285031512345")  # a fictional adult, valid control digit


def xml_for(seller: str, buyer: Party, number: str) -> bytes:
    # the number gets a digit: CIUS-RO requires one (BR-RO-010)
    spec = InvoiceSpec(number=f"{number}-1", issue_date=date(2026, 3, 9), seller=Party(seller, "Vanzator SRL"),
                       buyer=buyer, lines=[Line("Servicii", Decimal("2"), "H87", Decimal("150.00"), "S",
                                                Decimal("19"))])
    return render(spec)


def without_buyer_ids(xml: bytes, legal_id: str = "") -> bytes:
    """The buyer with no tax id at all (no PartyTaxScheme; no legal registration id, or `legal_id`)."""
    head, sep, tail = xml.partition(b"<cac:AccountingCustomerParty>")
    party, end, rest = tail.partition(b"</cac:AccountingCustomerParty>")
    party = re.sub(rb"<cac:PartyTaxScheme>.*?</cac:PartyTaxScheme>", b"", party, flags=re.S)
    party = re.sub(rb"(<cac:PartyLegalEntity>.*?)<cbc:CompanyID>[^<]*</cbc:CompanyID>", rb"\1", party, flags=re.S)
    if legal_id:
        party = party.replace(b"</cbc:RegistrationName>",
                              b"</cbc:RegistrationName><cbc:CompanyID>" + legal_id.encode() + b"</cbc:CompanyID>", 1)
    return head + sep + party + end + rest


# -- the rules -----------------------------------------------------------------------------------------

def test_route_from_the_document() -> None:
    def route(*ids: str, country: str | None = "RO", autofactura: bool = False) -> tuple[bool, bool, str]:
        r = document_route(Buyer(ids, country), autofactura=autofactura)
        return r.b2c, r.extern, r.reason.value

    assert route(BUYER_CNP) == (True, False, "buyer_cnp")
    assert route("0000000000000") == (True, False, "buyer_placeholder")
    assert route() == (True, False, "buyer_without_tax_id")
    assert route(country=None) == (True, False, "buyer_without_tax_id")  # CIUS-RO asks for it: read as Romania
    assert route("CLIENT-0042") == (True, False, "buyer_without_tax_id")  # a customer number is no tax id
    assert route("RO12340006", "12340006") == (False, False, "buyer_tax_id")
    assert route("12340006") == (False, False, "buyer_tax_id")
    # a 13-digit id whose control digit is wrong is not a CNP: a business id
    assert route(BUYER_CNP[:12] + str((int(BUYER_CNP[12]) + 1) % 10)) == (False, False, "buyer_tax_id")
    assert route("DE123456789", country="DE") == (False, True, "buyer_abroad")
    assert route(country="FR") == (False, True, "buyer_abroad")
    assert route("RO12340006", "12340006", country="DE") == (False, False, "buyer_abroad_ro_vat")
    assert route(BUYER_CNP, autofactura=True) == (False, False, "self_billing")


def test_caller_flags_checked_against_the_document() -> None:
    b2b, b2c, abroad = Buyer(("12340006",), "RO"), Buyer((BUYER_CNP,), "RO"), Buyer(("DE1",), "DE")
    assert decide(b2c, autofactura=False, b2c=True, extern=None).name == "uploadb2c"
    assert decide(b2c, autofactura=False, b2c=None, extern=False).reason == RouteReason.BUYER_CNP
    assert decide(abroad, autofactura=False, b2c=False, extern=True).extern
    assert decide(b2b, autofactura=True, b2c=None, extern=True).extern  # self-billing: the caller says
    for buyer, kw, code in ((b2b, {"b2c": True}, "b2c_mismatch"), (b2c, {"b2c": False}, "b2c_mismatch"),
                            (b2b, {"extern": True}, "extern_mismatch"), (abroad, {"extern": False}, "extern_mismatch"),
                            (b2c, {"extern": True}, "extern_mismatch"), (b2b, {"b2c": True, "autofactura": True},
                                                                         "b2c_mismatch")):
        args: dict[str, Any] = {"autofactura": False, "b2c": None, "extern": None, **kw}
        with pytest.raises(AppError) as ei:
            decide(buyer, **args)
        assert (ei.value.status, ei.value.code) == (422, code)
        assert ei.value.messages["ro"] and ei.value.message and ei.value.details["reason"]


# -- against the stack -----------------------------------------------------------------------------------

async def _count(h: Harness, table: Any) -> int:
    async with h.runtime.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(table))).scalar() or 0)


async def _uploads(h: Harness, cif: str) -> int:
    counters = await h.admin("counters", method="GET")
    return int(counters["cui"].get(cif, {}).get("upload", 0))


async def test_routes_at_the_emulator(fresh_database: str, topic_prefix: str, minio_up: None, kafka_up: str) -> None:
    emulator = new_emulator(2)
    seller, buyer = company_cifs(2)
    settings = efactura_settings(fresh_database, topic_prefix)
    person_ids = PersonIds.from_settings(settings)
    async with Harness(settings, emulator) as h:
        await h.grant("acc", [seller])
        minter = TokenMinter()
        h.app.state.jwks = minter.verifier()
        await grant_access(h.runtime, "alice", [seller])
        alice = {**minter.headers("alice"), "Content-Type": "application/xml"}
        url = f"{API}/companies/{seller}/submissions"
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app), base_url="http://efactura",
                                     timeout=60) as api:
            cases = [
                ("B2C-CNP", xml_for(seller, Party(BUYER_CNP, "Ion Popescu", vat=False), "B2C-CNP"),
                 "uploadb2c", False, "buyer_cnp"),
                ("B2C-ZERO", xml_for(seller, Party("0000000000000", "Client final", vat=False), "B2C-ZERO"),
                 "uploadb2c", False, "buyer_placeholder"),
                # CIUS-RO refuses a buyer without BT-47/BT-48 (BR-RO-120): filed here without offline validation
                ("B2C-NOID", without_buyer_ids(xml_for(seller, Party("1", "Client final", vat=False), "B2C-NOID")),
                 "uploadb2c", False, "buyer_without_tax_id"),
                ("B2C-CUST", without_buyer_ids(xml_for(seller, Party("1", "Client final", vat=False), "B2C-CUST"),
                                               legal_id="CLIENT-0042"), "uploadb2c", False, "buyer_without_tax_id"),
                ("EXT-ROVAT", xml_for(seller, Party(buyer, "Kunde GmbH", country="DE"), "EXT-ROVAT"),
                 "upload", False, "buyer_abroad_ro_vat"),
                ("EXT-NOID", xml_for(seller, Party("DE123456789", "Kunde GmbH", vat=False, country="DE"),
                                     "EXT-NOID"), "upload", True, "buyer_abroad"),
                ("B2B", xml_for(seller, Party(buyer, "Cumparator SRL"), "B2B"), "upload", False, "buyer_tax_id"),
            ]
            # contradictions first: 422 with a stable code, RO + EN, nothing stored, nothing uploaded
            docs = {n: x for n, x, *_ in cases}
            refusals = [("B2B", "b2c=true", "b2c_mismatch"), ("B2C-CNP", "b2c=false", "b2c_mismatch"),
                        ("B2C-ZERO", "b2c=false", "b2c_mismatch"), ("B2B", "extern=true", "extern_mismatch"),
                        ("EXT-ROVAT", "extern=true", "extern_mismatch"), ("EXT-NOID", "extern=false",
                                                                          "extern_mismatch")]
            for name, query, code in refusals:
                r = await api.post(f"{url}?{query}&offline_validation=false", content=docs[name],
                                   headers={**alice, "Accept-Language": "ro"})
                assert (r.status_code, r.json()["error"]["code"]) == (422, code), (name, r.text[:300])
                assert "Nu s-a salvat" in r.json()["error"]["message"], r.text[:300]
            r = await api.post(f"{url}?b2c=true", files={"file": ("f.xml", docs["B2B"], "text/xml")},
                               headers=minter.headers("alice"))
            assert (r.status_code, r.json()["error"]["code"]) == (422, "b2c_mismatch"), r.text[:300]
            r = await api.post(url, files={"file": ("f.xml", docs["EXT-NOID"], "text/xml")},
                               data={"extern": "false"}, headers=minter.headers("alice"))
            assert (r.status_code, r.json()["error"]["code"]) == (422, "extern_mismatch"), r.text[:300]
            assert await _count(h, submissions) == 0 and await _count(h, outbox) == 0
            assert await _uploads(h, seller) == 0
            blobs = h.app.state.deps.submissions.blobs
            for name in ("B2B", "B2C-CNP", "B2C-ZERO", "EXT-ROVAT", "EXT-NOID"):  # no XML stored either
                sha = hashlib.sha256(docs[name]).hexdigest()
                assert not await blobs.exists(f"efactura/{seller}/submissions/xml/{sha}.xml"), name

            for name, xml, route, extern, reason in cases:
                # the caller's flag, when it agrees, is accepted like silence
                query = "b2c=true&" if name == "B2C-ZERO" else "extern=true&" if name == "EXT-NOID" else ""
                query += "offline_validation=false" if name == "B2C-NOID" else "offline_validation=true"
                r = await api.post(f"{url}?{query}", content=xml, headers=alice)
                assert r.status_code == 202, (name, r.text[:500])
                sub = r.json()
                assert (sub["route"], sub["extern"], sub["route_reason"]) == (route, extern, reason), (name, sub)
                assert sub["b2c"] == (route == "uploadb2c") and sub["anaf_index"], sub
                up = await h.admin(f"uploads/{sub['anaf_index']}", method="GET")
                assert (up["b2c"], up["extern"], up["cif"]) == (route == "uploadb2c", extern, seller), (name, up)
                again = (await api.get(f"{API}/submissions/{sub['id']}", headers=alice)).json()
                assert (again["route"], again["route_reason"]) == (route, reason)
            assert await _uploads(h, seller) == len(cases)
            # the B2C buyer's CNP is kept as its person key, in the table and in the events
            async with h.runtime.sessions() as s:
                buyers = set((await s.execute(select(submissions.c.buyer_cif))).scalars())
                stored = " ".join(str(v) for row in (await s.execute(select(submissions))).all() for v in row)
                payloads = b" ".join((await s.execute(select(outbox.c.payload))).scalars())
            assert person_ids.key_of(BUYER_CNP) in buyers and "0000000000000" in buyers
            assert BUYER_CNP not in stored and BUYER_CNP.encode() not in payloads


# httpx's INFO line quotes every URL (ANAF's `cif=` included) and is kept below WARNING out of a service's logs
_SILENCED = ("aiokafka", "kafka", "uvicorn.access", "httpx", "httpcore")


def service_logs(caplog: Any) -> str:
    return "\n".join(f"{r.name} {r.getMessage()} {r.__dict__}" for r in caplog.records
                     if not (r.name.split(".")[0] in _SILENCED and r.levelno < logging.WARNING))


SELLER_CNP = cnp("179042512345")  # a fictional natural person filing under their CNP


def person_scenario(seller_cnp: str) -> dict[str, Any]:
    sc = scenario(2)
    sc["companies"].append({"cui": seller_cnp, "name": "Popa Ion Persoana Fizica", "county": "CJ"})
    sc["certificates"][0]["rights"].append(seller_cnp)
    return sc


async def test_a_person_files_under_the_cnp_and_nothing_keeps_it(
        fresh_database: str, topic_prefix: str, minio_up: None, kafka_up: str, caplog: Any, capfd: Any) -> None:
    caplog.set_level(logging.DEBUG)
    emulator = create_emulator(person_scenario(SELLER_CNP), admin=True)
    _, buyer = company_cifs(2)
    settings = efactura_settings(fresh_database, topic_prefix)
    ids = PersonIds.from_settings(settings)
    key, unsealed_key = ids.key_of(SELLER_CNP), ids.key_of(cnp("290010112345"))
    async with Harness(settings, emulator) as h:
        for k, sealed in ((key, ids.seal(SELLER_CNP)), (unsealed_key, None)):
            async with h.runtime.uow() as uow:
                await on_entitlements_changed(EntitlementsChanged(cif=k, cnp_sealed=sealed, connections=[
                    EntitledConnection(connection_id="acc", holder_cif=k, services=["efactura"], may_file=True)]),
                    None, uow, None)
                await uow.commit()
        minter = TokenMinter()
        h.app.state.jwks = minter.verifier()
        await grant_access(h.runtime, "ion", [key, unsealed_key])
        ion = {**minter.headers("ion"), "Content-Type": "application/xml"}
        person = Party(SELLER_CNP, "Popa Ion", vat=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app), base_url="http://efactura",
                                     timeout=60) as api:
            xml = render(InvoiceSpec(number="PF-1", issue_date=date(2026, 3, 9), seller=person,
                                     buyer=Party(buyer, "Cumparator SRL"),
                                     lines=[Line("Servicii", Decimal("1"), "H87", Decimal("100.00"), "S",
                                                 Decimal("19"))]))
            # the CNP never goes in a URL; another person's document is not this person's
            r = await api.post(f"{API}/companies/{SELLER_CNP}/submissions", content=xml, headers=ion)
            assert (r.status_code, r.json()["error"]["code"]) == (422, "cnp_in_url")
            r = await api.post(f"{API}/companies/{unsealed_key}/submissions?offline_validation=false", content=xml,
                               headers=ion)
            assert (r.status_code, r.json()["error"]["code"]) == (422, "seller_mismatch")
            assert SELLER_CNP not in r.text
            assert await _count(h, submissions) == 0 and await _uploads(h, SELLER_CNP) == 0

            r = await api.post(f"{API}/companies/{key}/submissions", content=xml, headers=ion)
            assert r.status_code == 202, r.text[:500]
            sub = r.json()
            assert (sub["cif"], sub["seller_cif"], sub["state"]) == (key, key, "processing"), sub
            assert key in sub["idempotency_key"] and SELLER_CNP not in r.text
            up = await h.admin(f"uploads/{sub['anaf_index']}", method="GET")
            assert up["cif"] == SELLER_CNP and not up["b2c"]  # ANAF was given the clear CNP as `cif=`
            assert await _uploads(h, SELLER_CNP) == 1
            row = await drive(h, sub["id"], ("accepted", "rejected"), linked=False)
            assert row.anaf_state in ("ok", "nok"), row

            # a person key whose CNP portfolio has not sent: kept, not uploaded, told why without any CNP
            other = render(InvoiceSpec(number="PF-2", issue_date=date(2026, 3, 9),
                                       seller=Party(cnp("290010112345"), "Alta Persoana", vat=False),
                                       buyer=Party(buyer, "Cumparator SRL"),
                                       lines=[Line("Servicii", Decimal("1"), "H87", Decimal("100.00"), "S",
                                                   Decimal("19"))]))
            r = await api.post(f"{API}/companies/{unsealed_key}/submissions?offline_validation=false",
                               content=other, headers=ion)
            assert r.status_code == 202 and r.json()["state"] == "received", r.text[:500]
            assert "cnp_missing" in (r.json()["last_error"] or ""), r.json()
            assert await _uploads(h, cnp("290010112345")) == 0

        async with h.runtime.sessions() as s:
            stored = " ".join(str(v) for row in (await s.execute(select(submissions))).all() for v in row)
            payloads = b" ".join((await s.execute(select(outbox.c.payload))).scalars())
        out, err = capfd.readouterr()  # structlog writes the service's lines to stdout
        logs = service_logs(caplog) + out + err
        assert "efactura.upload" in logs  # the service's logs were captured
        for clear in (SELLER_CNP, cnp("290010112345")):
            assert clear not in stored and clear.encode() not in payloads
            assert clear not in logs
        assert key.encode() in payloads  # the events name the person by key
