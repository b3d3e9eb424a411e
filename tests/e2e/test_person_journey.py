"""A natural person filing under their CNP (RO e-Factura is mandatory for them since June 2026), end to end through
the real services and the ANAF emulator: registered by CNP and known everywhere by the platform's person key,
authorized at ANAF with their own certificate, their messages archived, an invoice filed with the CNP as ANAF's
`cif=`; and the CNP in no address, no Kafka message and no service log."""
from __future__ import annotations

import asyncio
import uuid
from datetime import date
from decimal import Decimal

import httpx
import pytest
from anaf_emulator.ubl import InvoiceSpec, Line, Party, render
from e2ekit import CALLBACK_TIMEOUT, authorize_at_anaf, eventually, signup
from spvhub_devtools.testing import make_settings, topic_records
from system import System

pytestmark = pytest.mark.e2e
PERSON_CNP = "1850315124561"  # the demo's natural person (certificate persoana-fizica), fictional
BUYER = "41776026"  # a company the person sells to


@pytest.fixture(scope="module")
def person(system: System):
    """Journey 1 for a natural person: account, company by CNP, authorization at ANAF with their certificate."""
    user = signup(system.url("auth"), f"pf-{uuid.uuid4().hex[:6]}@exemplu.ro", "Radu Stoica")
    r = user.post(f"{system.url('portfolio')}/api/portfolio/companies",
                  json={"cif": PERSON_CNP, "name": "Stoica Radu Mihai"})
    assert r.status_code == 201, r.text
    company = r.json()
    key = company["cif"]
    assert key.startswith("PF") and company["kind"] == "cnp" and company["name"] == "Stoica Radu Mihai"
    # registering proves nothing: until ANAF says so, the registering person sees the CNP masked
    assert company["tax_id"] != PERSON_CNP and company["tax_id"].endswith(PERSON_CNP[-4:])
    # the authorization names the company by its key: auth learnt the sealed CNP from portfolio's event
    start = eventually(lambda: (lambda r: r.json() if r.status_code in (200, 201) else None)(
        user.post(f"{system.url('auth')}/api/auth/anaf/authorizations", json={"company_cif": key})),
        "the authorization to start (access read model and the sealed CNP)")
    back_at = authorize_at_anaf(start["authorize_url"], "persoana-fizica")
    conn = httpx.get(back_at, timeout=CALLBACK_TIMEOUT)
    assert conn.status_code in (200, 201), conn.text
    assert conn.json()["company_cif"] == key and PERSON_CNP not in conn.text
    verified = eventually(lambda: (lambda c: c if c.get("verification") == "verified" else None)(
        user.get(f"{system.url('portfolio')}/api/portfolio/companies/{key}").json()), "the person to be verified")
    assert verified["tax_id"] == PERSON_CNP  # a verified member sees their own CNP
    user.key = key
    return user


def test_the_person_syncs_under_the_key(system: System, person):
    efactura = system.url("efactura")
    listed = system.admin("GET", f"messages?cif={PERSON_CNP}").json()
    assert listed, "the demo's natural person has messages at the emulator"
    r = person.post(f"{efactura}/api/efactura/companies/{person.key}/sync")
    assert r.status_code in (200, 202), r.text

    def synced():
        st = person.get(f"{efactura}/api/efactura/companies/{person.key}/sync").json()
        done = st["messages"]["archived"] + st["messages"]["lost"]
        return st if st.get("last_success_at") and done >= len(listed) else None
    st = eventually(synced, "the person's messages to be archived", timeout=120)
    assert st["messages"]["failed"] == 0 and st["messages"]["archived"] >= 1
    page = person.get(f"{efactura}/api/efactura/invoices", params={"company": person.key, "limit": 100})
    assert page.status_code == 200 and page.json()["items"], page.text
    assert PERSON_CNP not in page.text  # the person appears by key in their own invoices too
    # the CNP is never an address
    r = person.get(f"{efactura}/api/efactura/companies/{PERSON_CNP}/sync")
    assert r.status_code == 422 and r.json()["error"]["code"] == "cnp_in_url"


def test_the_person_files_with_the_cnp_as_anafs_cif(system: System, person):
    efactura = system.url("efactura")
    xml = render(InvoiceSpec(number=f"PF-{uuid.uuid4().hex[:6]}-1", issue_date=date.today(),
                             seller=Party(PERSON_CNP, "Stoica Radu Mihai", vat=False),
                             buyer=Party(BUYER, "Cumparator SRL"),
                             lines=[Line("Consultanta", Decimal("2"), "H87", Decimal("250.00"), "S", Decimal("21"))]))
    r = httpx.post(f"{efactura}/api/efactura/companies/{person.key}/submissions", content=xml, timeout=60,
                   headers={**person.headers, "Content-Type": "application/xml"})
    assert r.status_code == 202, r.text
    sub = r.json()
    assert sub["cif"] == person.key, sub
    assert PERSON_CNP not in r.text, r.text

    def decided():
        s = person.get(f"{efactura}/api/efactura/submissions/{sub['id']}").json()
        return s if s.get("anaf_index") and s["state"] in ("accepted", "rejected") else None
    done = eventually(decided, "ANAF's answer to the person's invoice", timeout=120)
    assert done["state"] == "accepted", done
    upload = system.admin("GET", f"uploads/{done['anaf_index']}").json()
    assert upload["cif"] == PERSON_CNP, upload  # ANAF is the one place that is given the clear CNP


def test_the_cnp_is_on_no_kafka_topic_and_in_no_log(system: System, person):
    """After registration, authorization, sync and filing: not one Kafka record and not one service log line holds
    the clear CNP (the demo's other companies have nothing to do with it, so any hit is a leak)."""
    records = [(topic, (key or b"") + b" " + (value or b"")) for topic, key, value in
               asyncio.run(topic_records(make_settings().kafka_bootstrap, system.prefix))]
    # the person's own events were read: registered, entitled, archived, filed (all by key)
    assert len([topic for topic, blob in records if person.key.encode() in blob]) >= 4
    assert not [topic for topic, blob in records if PERSON_CNP.encode() in blob]
    for service in ("auth", "portfolio", "efactura", "notifier", "invitations", "etransport", "webhooks"):
        log = system.logdir / f"{system.run_id}-{service}.log"
        if log.exists():
            assert PERSON_CNP not in log.read_text(errors="replace"), f"{service} logged the clear CNP"
