"""No input yields a 5xx, through the real gateway of a real system: the hostile requests that once did, as named
regression tests (each refusal a 4xx with a stable code, and no effect), then a bounded property-based fuzz run
of every public operation of the merged OpenAPI (schemathesis; a fixed seed and example count) with the token of
a verified owner whose company has data, failing on any 5xx or an answer that breaks its declared schema."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from anaf_emulator.ubl import InvoiceSpec, Line, Party, render
from e2ekit import CALLBACK_TIMEOUT, Client, authorize_at_anaf, eventually, signup
from spvhub_devtools.testing import ROOT
from system import System

pytestmark = pytest.mark.e2e
BAKERY = "18453276"
# requests per operation; the whole run stays within a few minutes on two cores (SPVHUB_FUZZ_EXAMPLES to widen)
FUZZ_EXAMPLES = int(os.environ.get("SPVHUB_FUZZ_EXAMPLES", "12"))
# operations that end the fuzzer's own session or account (the rest of the run would be 401s) or send mail
SESSION_ENDING = ("/api/auth/logout", "/api/auth/sessions", "/api/auth/password", "/api/auth/email",
                  "/api/auth/account", "/api/auth/me/delete")


@pytest.fixture(scope="module")
def system(postgres_up: None, kafka_up: str, minio_up: None) -> Iterator[System]:
    s = System(gateway=True)
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def owner(system: System) -> Client:
    """The bakery's owner, verified by her certificate, her invoices synced."""
    gw = system.public_url
    elena = signup(gw, f"elena-{uuid.uuid4().hex[:6]}@example.ro", "Elena Munteanu")
    r = elena.post(f"{gw}/api/portfolio/companies", json={"cif": BAKERY})
    assert r.status_code in (200, 201), r.text
    start = eventually(lambda: (lambda r: r.json() if r.status_code == 201 else None)(
        elena.post(f"{gw}/api/auth/anaf/authorizations", json={"company_cif": BAKERY})), "authorization start")
    back = authorize_at_anaf(start["authorize_url"], "brutar", "0000")
    assert httpx.get(back, timeout=CALLBACK_TIMEOUT).status_code in (200, 201, 302, 303)
    eventually(lambda: elena.get(f"{gw}/api/portfolio/companies/{BAKERY}").json().get("verification") == "verified",
               "the bakery verified")
    eventually(lambda: elena.get(f"{gw}/api/efactura/invoices", params={"cif": BAKERY}).json().get("items"),
               "the bakery's invoices synced", timeout=120)
    return elena


def _refused(r: httpx.Response, *codes: str) -> None:
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    body = r.json()
    assert body["error"]["code"], body
    if codes:
        assert body["error"]["code"] in codes, body


def test_nul_bytes_in_text_parameters_are_refused(system: System, owner: Client) -> None:
    gw = system.public_url
    for path, params in [("/api/efactura/invoices", {"partner": "a\x00b"}),
                         ("/api/efactura/invoices", {"number": "\x00"}),
                         ("/api/etransport/transports", {"vehicle": "B\x0012ABC"}),
                         ("/api/etransport/transports", {"company": "RO\x00"}),
                         ("/api/invitations", {"firm_cif": "1\x002"})]:
        r = httpx.get(f"{gw}{path}", params=params, headers=owner.headers, timeout=30)
        _refused(r, "invalid_characters")
    # in the path: the gateway itself refuses it (nginx's own 400, before any service)
    r = httpx.post(f"{gw}/api/notifier/notifications/a%00b/read", headers=owner.headers, timeout=30)
    assert r.status_code == 400, r.text
    before = owner.get(f"{gw}/api/auth/me").json()
    r = owner.patch(f"{gw}/api/auth/me", json={"name": "Elena\x00Munteanu"})
    _refused(r, "invalid_characters")
    assert owner.get(f"{gw}/api/auth/me").json() == before
    email = f"nul-{uuid.uuid4().hex[:6]}@example.ro"
    r = httpx.post(f"{gw}/api/auth/signup", json={"email": email, "password": "Parola-Lunga-2026!", "name": "Ion\x00"},
                   timeout=30)
    _refused(r, "invalid_characters")
    r = httpx.post(f"{gw}/api/auth/login", json={"email": email, "password": "Parola-Lunga-2026!"}, timeout=30)
    assert r.status_code in (401, 403, 429), r.text  # no account was made


def test_an_invalid_firm_cif_in_invitations_is_refused(system: System, owner: Client) -> None:
    gw = system.public_url
    for firm in ("abc", "RO", "0", "9" * 20, "ＲＯ１２"):
        r = owner.post(f"{gw}/api/invitations", json={"firm_cif": firm, "invitations": [
            {"client_cif": BAKERY, "name": "X", "email": "x@example.ro"}]})
        _refused(r)
        r = owner.get(f"{gw}/api/invitations", params={"firm_cif": firm})
        _refused(r)
        r = owner.get(f"{gw}/api/invitations/candidates", params={"firm_cif": firm})
        _refused(r)


def test_an_invoice_id_beyond_int64_is_refused(system: System, owner: Client) -> None:
    gw = system.public_url
    for tail in ("", "/xml", "/zip", "/pdf"):
        r = owner.get(f"{gw}/api/efactura/invoices/{2**63}{tail}")
        _refused(r)
        r = owner.get(f"{gw}/api/efactura/invoices/{-(2**63) - 1}{tail}")
        _refused(r)


def test_an_amount_of_minus_1e400_is_refused(system: System, owner: Client) -> None:
    gw = system.public_url
    for params in ({"amount_min": "-1e400"}, {"amount_max": "1e400"}, {"amount_min": "NaN"},
                   {"amount_min": "1e100000"}):
        r = owner.get(f"{gw}/api/efactura/invoices", params=params)
        _refused(r)
        r = owner.get(f"{gw}/api/efactura/invoices-export.zip", params=params)
        _refused(r)


def test_a_buyer_cif_over_32_characters_on_submission_is_refused(system: System, owner: Client) -> None:
    gw = system.public_url
    base = f"{gw}/api/efactura/companies/{BAKERY}/submissions"
    before = owner.get(base).json()
    spec = InvoiceSpec(number="HOSTILE-1", issue_date=date(2026, 3, 9), seller=Party(BAKERY, "Brutaria Dulce SRL"),
                       buyer=Party("RO" + "1" * 40, "Cumparator SRL"),
                       lines=[Line("Paine", Decimal("2"), "H87", Decimal("5.00"), "S", Decimal("19"))])
    r = httpx.post(base, content=render(spec), timeout=60, headers={
        **owner.headers, "content-type": "application/xml", "Idempotency-Key": f"hostile-{uuid.uuid4().hex[:8]}"})
    _refused(r)
    assert owner.get(base).json() == before


def test_a_malformed_candidates_csv_is_refused(system: System, owner: Client) -> None:
    gw = system.public_url
    url = f"{gw}/api/portfolio/companies/{BAKERY}/candidates"
    for body in (b'cif\n"' + b"1" * 200_000 + b"\n", b"cif\n18453276\x00\n", b"\xff\xfe\x00c\x00i\x00f"):
        r = httpx.post(url, content=body, headers={**owner.headers, "content-type": "text/csv"}, timeout=60)
        _refused(r, "malformed_csv", "invalid_candidates")
    assert owner.get(url).json()["candidates"] == []


def test_the_merged_openapi_fuzzed_through_the_gateway_gives_no_5xx(system: System, owner: Client) -> None:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.core.errors import SerializationNotPossible
    from schemathesis.specs.openapi.checks import response_schema_conformance

    gw = system.public_url
    schema = schemathesis.openapi.from_path(ROOT / "contracts" / "openapi.json")
    server_errors: list[str] = []
    transport_errors: list[str] = []
    schema_breaks: list[str] = []
    calls = 0

    def fuzz(op: Any) -> None:
        @given(case=op.as_strategy())
        @settings(max_examples=FUZZ_EXAMPLES, derandomize=True, database=None, deadline=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            nonlocal calls
            calls += 1
            try:
                response = case.call(base_url=gw, headers=owner.headers, timeout=60)
            except SerializationNotPossible:
                return  # a body the declared media type cannot carry: never sent
            except Exception as e:  # noqa: BLE001 - collected, reported together below
                transport_errors.append(f"{op.method.upper()} {op.path}: {type(e).__name__}: {str(e)[:200]}")
                return
            if response.status_code >= 500:
                server_errors.append(f"{op.method.upper()} {op.path} -> {response.status_code} "
                                     f"{response.text[:200]!r} for {case.as_curl_command()[:400]}")
                return
            try:
                case.validate_response(response, checks=[response_schema_conformance])
            except Exception as e:  # noqa: BLE001 - collected, reported together below
                schema_breaks.append(f"{op.method.upper()} {op.path} -> {response.status_code}: {str(e)[:300]}")

        run()

    for result in schema.get_all_operations():
        op = result.ok()
        if not op.path.startswith(SESSION_ENDING):
            fuzz(op)
    print(f"fuzz: {calls} requests, {len(server_errors)} server errors, {len(schema_breaks)} schema breaks, "
          f"{len(transport_errors)} requests without an answer")
    for line in server_errors + schema_breaks + transport_errors:
        print("  ", line)
    assert not server_errors, "\n".join(server_errors[:40])
    assert not transport_errors, "\n".join(transport_errors[:40])
    assert not schema_breaks, "\n".join(schema_breaks[:40])
