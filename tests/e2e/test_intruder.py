"""Intruders, through the gateway of a real system: each attack on who may act for a company is played as its own
scenario, and each refusal is checked together with the absence of any effect (no row a stranger can find, no
event-driven state change, no ANAF call counted at the emulator, no e-mail in the SMTP capture).

Cast (demo scenario certificates): the accounting firm CONTABIL EXPERT (certificate `contabil`, SPV rights on the
firm and its eight clients), BRUTARIA DULCE's owner (certificate `brutar`, rights on the bakery only), the carrier
TRANS RAPID (certificate `transportator`), and people with no certificate at all.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from e2ekit import CALLBACK_TIMEOUT, Client, authorize_at_anaf, eventually, link_token, signup
from spvhub_devtools.testing import ROOT
from system import System

pytestmark = pytest.mark.e2e
FIRM, BAKERY, PHARMACY, TECH, CARRIER = "39812755", "18453276", "33274088", "40122368", "36054478"
PINS = {"brutar": "0000"}
ANAF_CALLS = ("lista", "descarcare", "upload", "stare")  # e-Factura/e-Transport endpoints that act for a CUI


@pytest.fixture(scope="module")
def system(postgres_up: None, kafka_up: str, minio_up: None) -> Iterator[System]:
    s = System(gateway=True)
    try:
        s.start()
        yield s
    finally:
        s.stop()


class World:
    """The people of the scenarios, all talking to the gateway only."""

    def __init__(self, system: System) -> None:
        self.s = system
        self.gw = system.public_url

    def person(self, label: str, name: str) -> Client:
        return signup(self.gw, f"{label}-{uuid.uuid4().hex[:6]}@example.ro", name)

    def register(self, who: Client, cif: str) -> dict[str, Any]:
        r = who.post(f"{self.gw}/api/portfolio/companies", json={"cif": cif})
        assert r.status_code in (200, 201), r.text
        return r.json()  # type: ignore[no-any-return]

    def authorize(self, who: Client, cif: str, certificate: str) -> httpx.Response:
        start = eventually(lambda: (lambda r: r.json() if r.status_code == 201 else None)(
            who.post(f"{self.gw}/api/auth/anaf/authorizations", json={"company_cif": cif})),
            f"the authorization of {cif} to start")
        back = authorize_at_anaf(start["authorize_url"], certificate, PINS.get(certificate, "1234"))
        return httpx.get(back, timeout=CALLBACK_TIMEOUT)

    def verified(self, who: Client, cif: str) -> None:
        eventually(lambda: self.company(who, cif).get("verification") == "verified", f"{cif} verified")

    def company(self, who: Client, cif: str) -> dict[str, Any]:
        r = who.get(f"{self.gw}/api/portfolio/companies/{cif}")
        return r.json() if r.status_code == 200 else {}  # type: ignore[no-any-return]

    def counters(self) -> dict[str, Any]:
        return self.s.admin("GET", "counters").json()  # type: ignore[no-any-return]

    def anaf_calls_for(self, cif: str) -> int:
        per = self.counters()["cui"].get(cif, {})
        return sum(n for k, n in per.items() if any(a in k.lower() for a in ANAF_CALLS))

    def mails_to(self, who: Client) -> list[dict[str, Any]]:
        return [m for m in self.s.mails() if who.user["email"] in str(m["to"])]

    def notices(self, who: Client) -> list[dict[str, Any]]:
        r = who.get(f"{self.gw}/api/notifier/notifications", params={"limit": 100})
        assert r.status_code == 200, r.text
        return r.json()["items"]  # type: ignore[no-any-return]

    def invite(self, firm: Client, cif: str, who: str, email: str) -> dict[str, Any]:
        r = firm.post(f"{self.gw}/api/invitations", json={"firm_cif": FIRM, "invitations": [
            {"client_cif": cif, "name": who, "email": email, "phone": "0722123456"}]})
        assert r.status_code in (201, 207), r.text
        item = r.json()["results"][0]
        assert item["ok"], item
        return item["invitation"]  # type: ignore[no-any-return]

    def claim_from_mail(self, email: str, name: str) -> tuple[Client, dict[str, Any]]:
        mail = eventually(lambda: next((m for m in self.s.mails() if email in str(m["to"])
                                        and "invitation=" in m.get("text", "")), None),
                          f"the invitation e-mail to {email}")
        person = signup(self.gw, email, name)
        r = person.post(f"{self.gw}/api/invitations/claim", json={"token": link_token(mail)})
        assert r.status_code == 200, r.text
        return person, r.json()


def anaf_data_requests(cif: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every public operation that returns or acts on ANAF data of one company, as (method, path, kwargs)."""
    xml = ("<?xml version='1.0'?><Invoice xmlns='urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'/>")
    return [
        ("GET", f"/api/efactura/invoices?cif={cif}", {}),
        ("GET", f"/api/efactura/invoices-export.zip?cif={cif}", {}),
        ("GET", f"/api/efactura/companies/{cif}/sync", {}),
        ("POST", f"/api/efactura/companies/{cif}/sync", {}),
        ("PUT", f"/api/efactura/companies/{cif}/sync-settings", {"json": {"interval_minutes": 30}}),
        ("GET", f"/api/efactura/companies/{cif}/messages", {}),
        ("POST", f"/api/efactura/companies/{cif}/reprocess", {}),
        ("GET", f"/api/efactura/companies/{cif}/submissions", {}),
        ("POST", f"/api/efactura/companies/{cif}/submissions",
         {"content": xml, "headers": {"content-type": "application/xml", "Idempotency-Key": "intruder-1"}}),
        ("GET", f"/api/etransport/transports?company={cif}", {}),
        ("POST", f"/api/etransport/companies/{cif}/poll", {}),
        ("GET", f"/api/portfolio/companies/{cif}/discovered", {}),
        ("GET", f"/api/portfolio/companies/{cif}/portfolio-status", {}),
        ("POST", f"/api/portfolio/companies/{cif}/discovery", {}),
        ("GET", f"/api/portfolio/companies/{cif}/members", {}),
        ("GET", f"/api/auth/anaf/connections?company_cif={cif}", {}),
        ("GET", f"/api/invitations?firm_cif={cif}", {}),
    ]


def items(body: Any) -> list[dict[str, Any]]:
    """A list answer, bare or in the `items` envelope of the paged style."""
    return body["items"] if isinstance(body, dict) else body  # type: ignore[no-any-return]


def call(w: World, who: Client, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {**who.headers, **kw.pop("headers", {})}
    return httpx.request(method, f"{w.gw}{path}", headers=headers, timeout=60, **kw)


@pytest.fixture(scope="module")
def world(system: System) -> World:
    return World(system)


@pytest.fixture(scope="module")
def firm(world: World) -> Client:
    """The accounting firm, verified by its own authorization, its clients discovered."""
    maria = world.person("maria", "Maria Ionescu")
    world.register(maria, FIRM)
    r = world.authorize(maria, FIRM, "contabil")
    assert r.status_code in (200, 201), r.text
    world.verified(maria, FIRM)
    r = maria.patch(f"{world.gw}/api/portfolio/companies/{FIRM}", json={"provides_accounting_services": True})
    assert r.status_code == 200, r.text
    eventually(lambda: maria.get(f"{world.gw}/api/portfolio/companies/{FIRM}/discovered").json().get("count", 0) >= 8,
               "discovery of the firm's clients", timeout=90)
    return maria


@pytest.fixture(scope="module")
def bakery(world: World) -> Client:
    """The bakery's real owner, verified by her own certificate."""
    elena = world.person("elena", "Elena Munteanu")
    world.register(elena, BAKERY)
    r = world.authorize(elena, BAKERY, "brutar")
    assert r.status_code in (200, 201), r.text
    world.verified(elena, BAKERY)
    return elena


def test_a_stranger_who_types_a_covered_cif_gets_nothing_and_files_nothing(world: World, firm: Client) -> None:
    """TECH is on the firm's certificate, but it never collaborated with the firm: registering its CIF gives a
    stranger nothing, and no connection ever acts for it."""
    time.sleep(3)  # let the firm's first sync run: it must not touch TECH
    before = world.anaf_calls_for(TECH)
    mails_before = len(world.s.mails())
    stranger = world.person("stranger", "Ion Strainul")
    company = world.register(stranger, TECH)
    assert company["verification"] == "unverified" and company["name"]  # registry data only
    for method, path, kw in anaf_data_requests(TECH):
        r = call(world, stranger, method, path, **kw)
        assert r.status_code == 403, (method, path, r.status_code, r.text[:300])
        assert r.json()["error"]["code"] in ("company_not_verified", "insufficient_role"), (path, r.text)
    # Romanian by default, English on request
    r = call(world, stranger, "GET", f"/api/efactura/invoices?cif={TECH}")
    assert "verificat" in r.json()["error"]["message"]
    r = call(world, stranger, "GET", f"/api/efactura/invoices?cif={TECH}", headers={"Accept-Language": "en"})
    assert "not verified" in r.json()["error"]["message"]
    # the unfiltered lists show nothing of TECH either
    r = call(world, stranger, "GET", "/api/efactura/invoices")
    assert r.status_code == 200 and r.json()["items"] == []
    # an authorization with a certificate that has no rights on TECH changes nothing
    r = world.authorize(stranger, TECH, "fara-drepturi")
    assert r.status_code == 403 and r.json()["error"]["code"] == "no_spv_rights"
    time.sleep(3)
    assert world.company(stranger, TECH)["verification"] == "unverified"
    assert world.anaf_calls_for(TECH) == before  # no sync, no upload, no poll for TECH through anyone's connection
    assert [m for m in world.s.mails()[mails_before:] if TECH in str(m)] == []


def test_a_declined_collaboration_cannot_be_taken_over_by_re_sending_the_invitation(
        world: World, firm: Client, bakery: Client) -> None:
    inv = world.invite(firm, BAKERY, "Elena Munteanu", bakery.user["email"])
    invitation_mail = eventually(lambda: [m for m in world.mails_to(bakery) if "invitation=" in m.get("text", "")],
                                 "the invitation e-mail to the bakery's owner")
    token = link_token(invitation_mail[-1])
    r = bakery.post(f"{world.gw}/api/invitations/claim", json={"token": token})
    assert r.status_code == 200, r.text
    r = eventually(lambda: (lambda r: r if r.status_code == 200 else None)(
        bakery.post(f"{world.gw}/api/invitations/{inv['id']}/decline")), "the decline")
    assert r.json()["status"] == "declined"
    # the firm re-sends it, to the owner or anyone: refused, and nothing is sent
    mails_before = len(world.s.mails())
    r = firm.post(f"{world.gw}/api/invitations/{inv['id']}/resend", json={"email": "evil@example.ro"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "invitation_declined", r.text
    # a new invitation to an address the firm chose: the claimant only asks to join, and cannot accept
    evil_mail = f"evil-{uuid.uuid4().hex[:6]}@example.ro"
    inv2 = world.invite(firm, BAKERY, "Elena (fals)", evil_mail)
    evil, _ = world.claim_from_mail(evil_mail, "Impostor")
    time.sleep(2)
    assert world.company(evil, BAKERY).get("verification") == "unverified"
    r = evil.post(f"{world.gw}/api/invitations/{inv2['id']}/accept")
    assert r.status_code == 403, r.text
    for method, path, kw in anaf_data_requests(BAKERY)[:4]:
        assert call(world, evil, method, path, **kw).status_code == 403, path
    # the firm never reaches the bakery, and the owner is told about the join request
    time.sleep(2)
    r = firm.get(f"{world.gw}/api/efactura/invoices", params={"cif": BAKERY})
    assert r.status_code == 403, r.text
    collabs = bakery.get(f"{world.gw}/api/portfolio/companies/{BAKERY}/collaborations").json()["collaborations"]
    assert "active" not in {c["status"] for c in collabs}
    members = bakery.get(f"{world.gw}/api/portfolio/companies/{BAKERY}/members").json()["items"]
    assert {m["user_id"]: m["status"] for m in members}[evil.user["id"]] == "pending_approval"
    eventually(lambda: [n for n in world.notices(bakery) if n["kind"] == "join_requested"],
               "the owner to be told about the join request")
    assert len([m for m in world.s.mails()[mails_before:] if "evil@example.ro" in str(m["to"])]) == 0


@pytest.fixture(scope="module")
def pharmacy(world: World, firm: Client) -> dict[str, Client]:
    """A client that joined through the firm's invitation (verified by it), accepted the collaboration, then got its
    own ANAF connection through a delegation link the firm's accountant completed; plus a plain member."""
    email = f"farmacist-{uuid.uuid4().hex[:6]}@example.ro"
    inv = world.invite(firm, PHARMACY, "Ana Farmacist", email)
    owner, _ = world.claim_from_mail(email, "Ana Farmacist")
    world.verified(owner, PHARMACY)
    r = eventually(lambda: (lambda r: r if r.status_code == 200 else None)(
        owner.post(f"{world.gw}/api/invitations/{inv['id']}/accept")), "the acceptance")
    assert r.json()["status"] == "accepted"
    eventually(lambda: firm.get(f"{world.gw}/api/portfolio/companies/{PHARMACY}").status_code == 200,
               "the firm to reach the client")
    # "Obține accesul prin contabil": the owner sends a delegation link, the accountant authorizes with the firm's
    # certificate (which has rights on the pharmacy)
    d = owner.post(f"{world.gw}/api/auth/anaf/delegations", json={"company_cif": PHARMACY})
    assert d.status_code == 201, d.text
    start = httpx.post(f"{world.gw}/api/auth/anaf/delegations/open",
                       json={"token": d.json()["token"], "name": "Maria Ionescu"}, timeout=30).json()
    back = authorize_at_anaf(start["authorize_url"], "contabil")
    assert httpx.get(back, timeout=CALLBACK_TIMEOUT).status_code in (200, 201)
    member = world.person("casier", "Casier Farmacie")
    r = owner.post(f"{world.gw}/api/portfolio/companies/{PHARMACY}/members",
                   json={"email": member.user["email"], "role": "member"})
    assert r.status_code == 201, r.text
    return {"owner": owner, "member": member}


def _pharmacy_connection(owner: Client, world: World) -> dict[str, Any]:
    def active() -> Any:
        r = owner.get(f"{world.gw}/api/auth/anaf/connections", params={"company_cif": PHARMACY})
        assert r.status_code == 200, r.text
        return [c for c in items(r.json()) if c["company_cif"] == PHARMACY and c["state"] == "active"] or None
    return eventually(active, "the pharmacy's own connection")[0]  # type: ignore[no-any-return]


def test_a_plain_member_and_the_firms_accountant_cannot_revoke_or_delegate(
        world: World, firm: Client, pharmacy: dict[str, Client]) -> None:
    owner, member = pharmacy["owner"], pharmacy["member"]
    conn = _pharmacy_connection(owner, world)
    links_before = items(owner.get(f"{world.gw}/api/auth/anaf/delegations",
                                   params={"company_cif": PHARMACY}).json())
    for who, allowed_codes in ((member, {"insufficient_role"}),
                               (firm, {"no_access_to_company", "insufficient_role", "not_found", "no_connection"})):
        r = who.post(f"{world.gw}/api/auth/anaf/connections/{conn['id']}/revoke")
        assert r.status_code in (403, 404) and r.json()["error"]["code"] in allowed_codes, r.text
        r = who.post(f"{world.gw}/api/auth/anaf/delegations", json={"company_cif": PHARMACY})
        assert r.status_code in (403, 404), r.text
        for link in links_before:
            r = who.post(f"{world.gw}/api/auth/anaf/delegations/{link['id']}/revoke")
            assert r.status_code in (403, 404), r.text
    # nothing changed: the connection is active, no new or revoked link
    assert _pharmacy_connection(owner, world)["id"] == conn["id"]
    assert items(owner.get(f"{world.gw}/api/auth/anaf/delegations",
                           params={"company_cif": PHARMACY}).json()) == links_before


def test_an_unverified_second_registrant_sees_nothing_and_the_real_owner_authorizes(world: World) -> None:
    squatter = world.person("squatter", "Primul Venit")
    world.register(squatter, CARRIER)
    andrei = world.person("andrei", "Andrei Popescu")
    first = world.register(andrei, CARRIER)  # no "already registered": an unverified claim locks nothing
    assert first["verification"] == "unverified"
    for who in (squatter, andrei):
        r = call(world, who, "GET", f"/api/etransport/transports?company={CARRIER}")
        assert r.status_code == 403 and r.json()["error"]["code"] == "company_not_verified"
    r = world.authorize(andrei, CARRIER, "transportator")
    assert r.status_code in (200, 201), r.text
    world.verified(andrei, CARRIER)
    assert world.company(andrei, CARRIER)["role"] == "owner"
    assert call(world, andrei, "GET", f"/api/etransport/transports?company={CARRIER}").status_code == 200
    r = call(world, squatter, "GET", f"/api/etransport/transports?company={CARRIER}")
    assert r.status_code == 403 and r.json()["error"]["code"] == "company_not_verified"
    members = andrei.get(f"{world.gw}/api/portfolio/companies/{CARRIER}/members").json()["items"]
    assert {m["user_id"]: m["status"] for m in members} == {andrei.user["id"]: "active",
                                                            squatter.user["id"]: "pending_approval"}
    r = httpx.delete(f"{world.gw}/api/portfolio/companies/{CARRIER}/members/{squatter.user['id']}",
                     headers=andrei.headers, timeout=30)
    assert r.status_code == 204
    assert world.company(squatter, CARRIER) == {}


# -- every operation of the merged OpenAPI that names a company or an object -------------------------------------
CIF_NAMES = {"cif", "company_cif", "firm_cif", "other_cif", "company", "carrier"}
# What an unverified member may do on its own company, by design: read the registry data, start the authorization
# and delegate it (that is how one gets verified), and leave.
UNVERIFIED_MAY = {("GET", "/api/portfolio/companies/{cif}"), ("POST", "/api/auth/anaf/authorizations"),
                  ("POST", "/api/auth/anaf/delegations"), ("GET", "/api/auth/anaf/delegations")}
NOT_ABOUT_A_COMPANY = {("POST", "/api/portfolio/companies")}  # registering proves nothing and grants nothing
# Answers that are 200 for anyone by design, with what they may show: ANAF's *public* registry (what
# webservicesp.anaf.ro tells anybody), and the caller's own API keys filtered by a company (none here).
OPEN_BY_DESIGN: dict[tuple[str, str], Any] = {
    ("GET", "/api/portfolio/registry/{cif}"): lambda body: "members" not in body and "verification" not in body,
    ("GET", "/api/auth/api-keys"): lambda body: body.get("items") == [],
}


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in schema:
        schema = next((s for s in schema["anyOf"] if s.get("type") != "null"), schema["anyOf"][0])
        return _resolve(spec, schema)
    return schema


def _example(spec: dict[str, Any], schema: dict[str, Any], name: str, cif: str) -> Any:
    """A valid value for a schema, so a refusal is about access, not about the body's shape."""
    schema = _resolve(spec, schema)
    if name in CIF_NAMES or name.endswith("_cif"):
        return cif
    if "enum" in schema:
        return schema["enum"][0]
    if "example" in schema:
        return schema["example"]
    t = schema.get("type")
    if t == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: _example(spec, v, k, cif) for k, v in props.items() if k in schema.get("required", [])}
    if t == "array":
        return [_example(spec, schema.get("items", {}), name, cif)]
    if t == "boolean":
        return True
    if t in ("integer", "number"):
        return max(1, int(schema.get("minimum", 1)))
    fmt = schema.get("format")
    if name == "email" or fmt == "email":
        return "someone@example.ro"
    if fmt == "date-time":  # an end after the start, so a range is valid
        return "2026-01-02T00:00:00Z" if name in ("until", "to", "end", "before") else "2026-01-01T00:00:00Z"
    if fmt == "date":
        return "2026-01-01"
    if fmt == "uuid":
        return str(uuid.uuid4())
    if fmt in ("uri", "url") or name == "url":
        return "https://example.ro/hook"
    if name == "phone":
        return "0722123456"
    return "x" * max(1, int(schema.get("minLength", 1)))


def company_operations() -> list[tuple[str, str, dict[str, Any]]]:
    spec = json.loads((ROOT / "contracts" / "openapi.json").read_text())
    ops = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            if (method.upper(), path) in NOT_ABOUT_A_COMPANY:
                continue
            params = {p["name"]: p for p in op.get("parameters", [])}
            body = op.get("requestBody", {}).get("content", {})
            json_schema = _resolve(spec, body["application/json"]["schema"]) if "application/json" in body else {}
            names = set(params) | set(json_schema.get("properties", {}))
            ids = [n for n in re.findall(r"{(\w+)}", path) if n not in CIF_NAMES]
            if not ids and not names & CIF_NAMES:
                continue
            ops.append((method.upper(), path, {"params": params, "json": json_schema, "raw": body, "spec": spec}))
    return ops


def build_request(op: tuple[str, str, dict[str, Any]], cif: str, ids: dict[str, str]) -> dict[str, Any]:
    method, path, d = op
    url = re.sub(r"{(\w+)}", lambda m: cif if m.group(1) in CIF_NAMES else ids.get(m.group(1)) or str(uuid.uuid4()),
                 path)
    query = {n: cif for n, p in d["params"].items() if p["in"] == "query" and n in CIF_NAMES}
    kw: dict[str, Any] = {"params": query, "headers": {"Idempotency-Key": uuid.uuid4().hex}}
    if d["json"]:
        kw["json"] = _example(d["spec"], d["json"], "", cif)
    elif d["raw"]:
        kw["content"] = b"<Invoice/>" if "application/xml" in d["raw"] else b"cif\n" + cif.encode()
        kw["headers"]["content-type"] = "application/xml" if "application/xml" in d["raw"] else "text/csv"
    return {"method": method, "url": url, **kw}


def test_every_operation_on_a_company_or_object_refuses_the_unverified_and_the_unrelated(
        world: World, firm: Client) -> None:
    """Generated from contracts/openapi.json: a new endpoint is covered without anyone remembering it."""
    ops = company_operations()
    assert len(ops) >= 40, len(ops)
    # real objects of the firm's, so "not found" is not the easy way out
    conn = items(firm.get(f"{world.gw}/api/auth/anaf/connections", params={"company_cif": FIRM}).json())
    link = firm.post(f"{world.gw}/api/auth/anaf/delegations", json={"company_cif": FIRM}).json()
    invs = items(firm.get(f"{world.gw}/api/invitations", params={"firm_cif": FIRM}).json())
    notes = world.notices(firm)
    invoices = firm.get(f"{world.gw}/api/efactura/invoices", params={"cif": FIRM, "limit": 1}).json().get("items", [])
    ids = {"connection_id": conn[0]["id"] if conn else "", "delegation_id": link.get("id", ""),
           "invitation_id": invs[0]["id"] if invs else "", "notification_id": notes[0]["id"] if notes else "",
           "invoice_id": str(invoices[0]["id"]) if invoices else "1", "member_id": firm.user["id"]}
    unrelated = world.person("nobody", "Nimeni Strain")
    unverified = world.person("claimer", "Pretins Proprietar")
    own = world.register(unverified, "35509148")  # AGRO CAMPIA: on the firm's certificate, never verified here
    assert own["verification"] == "unverified"
    failures = []
    for op in ops:
        for who, cif, label in ((unrelated, FIRM, "unrelated"), (unverified, "35509148", "unverified member")):
            if label == "unverified member" and (op[0], op[1]) in UNVERIFIED_MAY:
                continue
            req = build_request(op, cif, ids)
            req["headers"] = {**who.headers, **req["headers"]}
            r = httpx.request(req.pop("method"), f"{world.gw}{req.pop('url')}", timeout=60, **req)
            check = OPEN_BY_DESIGN.get((op[0], op[1]))
            if check is not None and r.status_code == 200:
                if not check(r.json()):
                    failures.append(f"{label}: {op[0]} {op[1]} shows more than it may: {r.text[:200]}")
                continue
            if r.status_code not in (403, 404):
                failures.append(f"{label}: {op[0]} {op[1]} -> {r.status_code} {r.text[:200]}")
    assert failures == [], "\n".join(failures)
    # the firm's objects are untouched
    assert firm.get(f"{world.gw}/api/auth/anaf/connections/{ids['connection_id']}").json()["state"] == "active"


def test_a_revoke_tells_only_the_people_whose_sync_stops(world: World, firm: Client, bakery: Client,
                                                         pharmacy: dict[str, Client]) -> None:
    """The firm revokes its own authorization. Its certificate covered the bakery and the pharmacy too, but both
    are synced through their own connections: only the firm's people hear that its sync stopped."""
    conns = items(firm.get(f"{world.gw}/api/auth/anaf/connections", params={"company_cif": FIRM}).json())
    [conn] = [c for c in conns if c["state"] == "active"]
    before = {who: {n["id"] for n in world.notices(c)} for who, c in
              (("firm", firm), ("bakery", bakery), ("pharmacy", pharmacy["owner"]))}
    mails_before = len(world.s.mails())
    r = firm.post(f"{world.gw}/api/auth/anaf/connections/{conn['id']}/revoke")
    assert r.status_code == 200 and r.json()["state"] == "revoked", r.text
    eventually(lambda: [n for n in world.notices(firm) if n["kind"] == "access_lost" and n["id"] not in
                        before["firm"]], "the firm to be told its sync stopped", timeout=60)
    time.sleep(5)  # what would reach the others has had time to
    for who, c in (("bakery", bakery), ("pharmacy", pharmacy["owner"])):
        new = [n for n in world.notices(c) if n["id"] not in before[who]]
        assert [n["kind"] for n in new if n["kind"] in ("access_lost", "reauthorization_required")] == [], (who, new)
    for c in (bakery, pharmacy["owner"], pharmacy["member"]):
        about_access = [m for m in world.s.mails()[mails_before:] if c.user["email"] in str(m["to"])
                        and m["headers"].get("X-Spvhub-Kind") in ("access_lost", "reauthorization_required")]
        assert about_access == [], about_access
