"""End to end, through the public HTTP APIs of the real services against the ANAF emulator, observed through
Kafka effects, MinIO and the captured mailbox (journeys 1, 2, 4 and 5 of product.md)."""
from __future__ import annotations

import io
import uuid
import zipfile

import httpx
import pytest
from e2ekit import CALLBACK_TIMEOUT, authorize_at_anaf, eventually, link_token, signup
from system import System

pytestmark = pytest.mark.e2e
FIRM, CLIENT, CARRIER = "39812755", "18453276", "36054478"
CLIENTS = {"18453276", "25377198", "33274088", "40122368", "35509148", "28904535", "41776026", "37662813"}


@pytest.fixture(scope="module")
def firm(system: System):
    """Journey 1 for an accounting firm: account, company, flag, authorization at ANAF with its certificate."""
    user = signup(system.url("auth"), f"firma-{uuid.uuid4().hex[:6]}@contabil-expert.ro", "Maria Ionescu")
    r = user.post(f"{system.url('portfolio')}/api/portfolio/companies", json={"cif": f"RO {FIRM}"})
    assert r.status_code == 201, r.text
    company = r.json()
    assert company["name"] == "CONTABIL EXPERT SRL" and company["trade_register_no"] and company["address"]
    assert company["verification"] == "unverified"  # registering a CIF proves nothing
    start = eventually(lambda: (lambda r: r.json() if r.status_code in (200, 201) else None)(
        user.post(f"{system.url('auth')}/api/auth/anaf/authorizations", json={"company_cif": FIRM})),
        "the authorization to start (access read model)")
    back_at = authorize_at_anaf(start["authorize_url"], "contabil")
    assert back_at.startswith(f"{system.url('auth')}/api/auth/anaf/callback?code=")
    conn = httpx.get(back_at, timeout=CALLBACK_TIMEOUT)
    assert conn.status_code in (200, 201), conn.text
    user.connection = conn.json()
    # the authorization with rights on the firm verified the member: now it may manage the company
    eventually(lambda: user.get(f"{system.url('portfolio')}/api/portfolio/companies/{FIRM}").json().get(
        "verification") == "verified", "the firm to be verified")
    r = user.patch(f"{system.url('portfolio')}/api/portfolio/companies/{FIRM}",
                   json={"provides_accounting_services": True})
    assert r.status_code == 200, r.text
    return user


def test_authorization_is_active_with_person_serial_and_dates(system: System, firm):
    c = firm.connection
    assert c["state"] == "active" and c["company_cif"] == FIRM
    assert c["certificate_serial"] == "34:00:00:25:69:1a:2b:3c:4d:5e:6f:70:81:92:a3:b4"
    assert c["authorizing_person"] == "Maria Ionescu" or c.get("holder_name") == "Maria Ionescu"
    assert c["authorized_at"] and c["access_expires_at"] and c["refresh_expires_at"] and c["must_act_by"]


def test_portfolio_journey_discovery_invitation_signup_accept(system: System, firm):
    portfolio, invitations = system.url("portfolio"), system.url("invitations")
    discovered = eventually(lambda: (lambda d: d if d.get("count", 0) >= len(CLIENTS) else None)(
        firm.get(f"{portfolio}/api/portfolio/companies/{FIRM}/discovered").json()), "discovery", timeout=90)
    found = {c["cif"] for c in discovered["companies"]} - {FIRM}
    assert found == CLIENTS
    assert all(c["name"] and c["address"] for c in discovered["companies"])

    email = f"elena-{uuid.uuid4().hex[:6]}@brutaria-dulce.ro"
    r = firm.post(f"{invitations}/api/invitations", json={"firm_cif": FIRM, "invitations": [
        {"client_cif": CLIENT, "name": "Elena Munteanu", "email": email, "phone": "0722123456"}]})
    assert r.status_code == 201, r.text

    mail = eventually(lambda: next((m for m in system.mails() if email in str(m["to"])), None),
                      "the invitation e-mail", timeout=60)
    assert "CONTABIL EXPERT" in mail["subject"].upper() or "invit" in mail["subject"].lower()
    token = link_token(mail)
    preview = httpx.get(f"{invitations}/api/invitations/preview", params={"token": token}, timeout=30)
    assert preview.status_code == 200 and CLIENT in preview.text

    client = signup(system.url("auth"), email, "Elena Munteanu")
    claimed = client.post(f"{invitations}/api/invitations/claim", json={"token": token})
    assert claimed.status_code == 200, claimed.text
    again = client.post(f"{invitations}/api/invitations/claim", json={"token": token})
    assert again.status_code == 409 and again.json()["error"]["code"] == "invitation_already_used"

    # the client's company is on the new account at once, pre-filled from the registry
    own = eventually(lambda: next((c for c in client.get(f"{portfolio}/api/portfolio/companies").json()["companies"]
                                   if c["cif"] == CLIENT), None), "the client's company on the new account")
    assert own["name"] == "BRUTARIA DULCE SRL" and own["address"]

    # accept from the bell: the actionable item carries the accept action
    item = eventually(lambda: next((n for n in client.get(f"{system.url('notifier')}/api/notifier/notifications")
                                    .json()["items"] if n["actionable"]), None), "the actionable invitation")
    accept = next(a for a in item["actions"] if a["action"] == "accept")
    r = client.post(f"{invitations}{accept['href']}" if accept["href"].startswith("/api/invitations")
                    else accept["href"])
    assert r.status_code == 200, r.text

    def firm_sees_client():
        items = firm.get(f"{portfolio}/api/portfolio/companies").json()["companies"]
        rel = {c["cif"]: (c["relation"], c.get("collaboration_status")) for c in items}
        return rel if rel.get(CLIENT) == ("client", "active") else None
    rel = eventually(firm_sees_client, "the firm's list to show the collaborating client")
    assert rel[FIRM][0] == "own"
    accepted_mail = eventually(lambda: [m for m in system.mails() if firm.user["email"] in str(m["to"])
                                        and "accept" in (m["subject"] + m["text"]).lower()], "acceptance e-mail")
    assert len(accepted_mail) == 1


def metric(system: System, service: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` on a service's /metrics whose labels include `labels`."""
    total = 0.0
    for line in httpx.get(f"{system.url(service)}/metrics", timeout=30).text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def test_invoices_are_archived_and_downloadable(system: System, firm):
    efactura = system.url("efactura")
    listed = {m["id"] for m in system.admin("GET", f"messages?cif={FIRM}").json()}
    assert listed
    r = firm.post(f"{efactura}/api/efactura/companies/{FIRM}/sync")
    assert r.status_code in (200, 202), r.text

    def synced():
        st = firm.get(f"{efactura}/api/efactura/companies/{FIRM}/sync").json()
        done = st["messages"]["archived"] + st["messages"]["lost"]
        return st if st.get("last_success_at") and done >= len(listed) else None
    st = eventually(synced, "the sync of every listed message", timeout=120)
    assert st["first_sync"]["reaches_back_days"] == 60 and st["messages"]["failed"] == 0

    # the series SRE watches moved during the sync, on every hop
    # the company's first sync may already have run on its own when its entitlement arrived: every archived
    # message was downloaded once, whichever sync did it
    assert metric(system, "efactura", "anaf_calls_total", endpoint="efactura.descarcare") >= \
        st["messages"]["archived"] > 0
    # set once the sync returns, a moment after it committed the status read above
    eventually(lambda: metric(system, "efactura", "efactura_sync_last_success_timestamp", cif=FIRM) > 0,
               "the last-success gauge of the company's sync")
    eventually(lambda: metric(system, "notifier", "consumer_messages_total",
                              topic=f"{system.prefix}efactura.invoice-downloaded") > 0,
               "the notifier to consume the invoice events")
    for service in ("auth", "portfolio", "invitations", "efactura", "etransport", "notifier"):
        body = httpx.get(f"{system.url(service)}/metrics", timeout=30).text
        assert "http_requests_total{" in body and "outbox_backlog{" in body, service

    items = firm.get(f"{efactura}/api/efactura/invoices", params={"company": FIRM, "limit": 500}).json()["items"]
    # every archived invoice, credit note and error report published its event (buyer messages have none);
    # counted from the process start, not from before the manual sync, which finds nothing new when the first sync
    # already ran; the relay publishes after the commit the sync status shows, so the counter may lag a moment
    with_event = sum(1 for i in items if i["document_type"] != "buyer_message")
    assert with_event > 0
    eventually(lambda: metric(system, "efactura", "outbox_published_total") >= with_event,
               f"the outbox relay to publish the events of {with_event} archived documents")
    ids = [i["message_id"] for i in items]
    assert len(ids) == len(set(ids))
    dates = [i["listed_at"] for i in items]
    assert dates == sorted(dates, reverse=True)
    inv = next(i for i in items if i["document_type"] == "invoice")
    assert inv["partner_name"] and inv["number"] and inv["total_amount"] and inv["signature_status"] == "valid"
    base = f"{efactura}/api/efactura/invoices/{inv['id']}"
    xml = firm.get(f"{base}/xml")
    assert xml.status_code == 200 and inv["number"].encode() in xml.content
    pdf = firm.get(f"{base}/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    original = firm.get(f"{base}/zip")
    assert original.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(original.content)).namelist()
    assert any(n.startswith("semnatura_") for n in names)


def test_a_stranger_sees_nothing_of_the_firm(system: System, firm):
    stranger = signup(system.url("auth"), f"strain-{uuid.uuid4().hex[:6]}@strain.ro", "Ion Strain")
    checks = [
        stranger.get(f"{system.url('portfolio')}/api/portfolio/companies/{FIRM}"),
        stranger.get(f"{system.url('portfolio')}/api/portfolio/companies/{FIRM}/discovered"),
        stranger.get(f"{system.url('efactura')}/api/efactura/companies/{FIRM}/sync"),
        stranger.post(f"{system.url('efactura')}/api/efactura/companies/{FIRM}/sync"),
        stranger.get(f"{system.url('invitations')}/api/invitations", params={"firm_cif": FIRM}),
        stranger.post(f"{system.url('auth')}/api/auth/anaf/authorizations", json={"company_cif": FIRM}),
    ]
    assert [r.status_code for r in checks] == [403] * len(checks), [r.text for r in checks]
    listed = stranger.get(f"{system.url('efactura')}/api/efactura/invoices").json()["items"]
    assert listed == []


def test_carrier_sees_its_transports_and_the_declarant_does_not(system: System):
    carrier = signup(system.url("auth"), f"transport-{uuid.uuid4().hex[:6]}@trans-rapid.ro", "Andrei Popescu")
    assert carrier.post(f"{system.url('portfolio')}/api/portfolio/companies",
                        json={"cif": CARRIER}).status_code == 201
    start = eventually(lambda: (lambda r: r.json() if r.status_code in (200, 201) else None)(
        carrier.post(f"{system.url('auth')}/api/auth/anaf/authorizations", json={"company_cif": CARRIER})),
        "the authorization to start")
    callback = httpx.get(authorize_at_anaf(start["authorize_url"], "transportator"), timeout=CALLBACK_TIMEOUT)
    assert callback.status_code in (200, 201), callback.text
    expected = {t["uit"] for t in system.admin("GET", f"transports?carrier={CARRIER}").json()
                if t["active"] and not t["deleted"]}
    assert expected

    def polled():
        r = carrier.post(f"{system.url('etransport')}/api/etransport/companies/{CARRIER}/poll")
        return r if r.status_code in (200, 202) else None
    eventually(polled, "etransport to track the carrier", timeout=90)
    got = eventually(lambda: (lambda items: {t["uit"] for t in items} if len(items) >= len(expected) else None)(
        carrier.get(f"{system.url('etransport')}/api/etransport/transports", params={"page_size": 500}
                    ).json()["items"]), "the carrier's transports")
    assert expected <= got

    declarant = signup(system.url("auth"), f"decl-{uuid.uuid4().hex[:6]}@tehno-construct.ro", "Declarant")
    assert declarant.post(f"{system.url('portfolio')}/api/portfolio/companies",
                          json={"cif": "25377198"}).status_code == 201
    seen = declarant.get(f"{system.url('etransport')}/api/etransport/transports", params={"page_size": 500})
    assert seen.status_code == 200 and seen.json()["items"] == []
