"""Demo data for `./dev up`, created only through the public HTTP API (the gateway when it runs).

A demo accounting firm authorizes e-Factura at the ANAF emulator with its certificate, its clients are
discovered and invited, one client signs up from the e-mailed link and accepts, a carrier authorizes
e-Transport, and invoice sync and transport polling are triggered. Safe to run again: existing users log in.
"""
from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

import httpx

ROOT = Path(__file__).resolve().parents[1]
STACK = dict(line.split("=", 1) for line in (ROOT / "infra" / "stack.env").read_text().splitlines()
             if line and not line.startswith("#") and "=" in line)
STACK.update({k: v for k, v in os.environ.items() if k.startswith("SPVHUB_")})  # same override rule as ./dev
PORT = {s: int(STACK[f"SPVHUB_{s.upper()}_PORT"]) for s in
        ("gateway", "auth", "portfolio", "invitations", "efactura", "etransport", "notifier")}
MAILBOX = f"http://127.0.0.1:{STACK['SPVHUB_MAILBOX_HTTP_PORT']}"
PASSWORD = "demo-parola-2026"
FIRM = {"cif": "39812755", "email": "maria.ionescu@contabil-expert.demo", "name": "Maria Ionescu",
        "certificate": "contabil"}
CLIENT = {"cif": "18453276", "email": "elena.munteanu@brutaria-dulce.demo", "name": "Elena Munteanu"}
CARRIER = {"cif": "36054478", "email": "andrei.popescu@trans-rapid.demo", "name": "Andrei Popescu",
           "certificate": "transportator"}


def step(n: int, total: int, text: str) -> None:
    print(f"    [{n}/{total}] {text}", flush=True)


def port_open(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        return True
    except httpx.HTTPError:
        return False


class Api:
    """Routes `/api/<service>/...` to the gateway, or straight to the service when no gateway runs."""

    def __init__(self) -> None:
        self.gateway = port_open(PORT["gateway"])
        # 90 s: the ANAF callback spends the ANAF budget shared with the sync, which may wait for the next minute
        self.http = httpx.Client(timeout=90, follow_redirects=False)

    def url(self, path: str) -> str:
        if self.gateway:
            return f"http://127.0.0.1:{PORT['gateway']}{path}"
        service = path.split("/")[2] if path.startswith("/api/") else "auth"
        return f"http://127.0.0.1:{PORT[service]}{path}"

    def call(self, method: str, path: str, token: str | None = None, ok: tuple[int, ...] = (200, 201),
             **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        r = self.http.request(method, self.url(path), headers=headers, **kw)
        if r.status_code not in ok:
            raise SystemExit(f"demo seed: {method} {path} -> {r.status_code} {r.text[:500]}")
        return r


def user(api: Api, who: dict[str, str]) -> str:
    """Sign up (or in, on a second run) and confirm the address from the verification e-mail: no company is
    verified for a person whose e-mail is not."""
    r = api.call("POST", "/api/auth/signup", json={"email": who["email"], "password": PASSWORD,
                                                   "name": who["name"], "locale": "ro"}, ok=(201, 409))
    if r.status_code == 409:
        r = api.call("POST", "/api/auth/login", json={"email": who["email"], "password": PASSWORD})
        if r.json()["user"].get("email_verified") is False:  # a first run stopped before the confirmation
            api.call("POST", "/api/auth/email/verification/resend", json={"email": who["email"]}, ok=(202,))
    if r.json()["user"].get("email_verified") is False:
        def confirmed() -> bool:  # the newest link (after a resend, an older e-mail's link no longer works)
            token = verification_token(who["email"])
            return bool(token) and api.call("POST", "/api/auth/email/verify", json={"token": token},
                                            ok=(200, 400)).status_code == 200
        wait_for(f"the verification e-mail to {who['email']}", confirmed)
    return str(r.json()["access_token"])


def verification_token(email: str) -> str | None:
    try:
        mails = httpx.get(f"{MAILBOX}/messages", params={"to": email}, timeout=5).json()
    except httpx.HTTPError:
        return None
    for m in reversed(mails):
        found = re.search(r"verify-email\?token=([\w\-]+)", m.get("text", ""))
        if found:
            return found.group(1)
    return None


def company(api: Api, token: str, cif: str) -> None:
    api.call("POST", "/api/portfolio/companies", token, json={"cif": f"RO{cif}"}, ok=(200, 201, 409))


def authorize(api: Api, token: str, cif: str, certificate: str) -> dict[str, Any]:
    """Start the authorization and play the person at ANAF: pick the certificate, enter the PIN."""
    # 403 while the caller is not verified for the company yet (registering proves nothing): nothing to reuse
    existing = api.call("GET", f"/api/auth/anaf/connections?company_cif={cif}", token, ok=(200, 403)).json()
    items = existing if isinstance(existing, list) else existing.get("items", [])
    active = [c for c in items if c.get("state", c.get("status")) == "active"]
    if active:
        return dict(active[0])
    for _ in range(30):  # the access read model may lag a moment behind the registration
        r = api.call("POST", "/api/auth/anaf/authorizations", token, json={"company_cif": cif},
                     ok=(200, 201, 403))
        if r.status_code != 403:
            break
        time.sleep(0.5)
    authorize_url = r.json()["authorize_url"]
    sep = "&" if "?" in authorize_url else "?"
    at_anaf = api.http.get(f"{authorize_url}{sep}{urlencode({'emulator_certificate': certificate})}")
    if at_anaf.status_code not in (302, 303):
        raise SystemExit(f"demo seed: the emulator did not redirect back ({at_anaf.status_code})")
    callback = urlparse(at_anaf.headers["location"])
    r = api.call("GET", f"{callback.path}?{callback.query}", ok=(200, 201, 303))
    # the authorization with rights proves control: wait until portfolio has verified the member
    wait_for(f"{cif} to be verified", lambda: api.call("GET", f"/api/portfolio/companies/{cif}", token).json().get(
        "verification") == "verified", timeout=60)
    return dict(r.json()) if r.status_code != 303 else {}


def wait_for(what: str, fn: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(1)
    raise SystemExit(f"demo seed: timed out waiting for {what}")


def invitation_token(email: str) -> str | None:
    try:
        mails = httpx.get(f"{MAILBOX}/messages", timeout=5).json()
    except httpx.HTTPError:
        return None
    for m in mails:
        if email in " ".join(m.get("to", [])) if isinstance(m.get("to"), list) else email in str(m.get("to")):
            found = re.search(r"invitation=([\w\-]+)", m.get("text", "") + m.get("html", ""))
            if found:
                return found.group(1)
    return None


def main() -> int:
    api = Api()
    total = 8
    print(f"    seeding through {'the gateway' if api.gateway else 'the services directly'}", flush=True)
    step(1, total, f"accounting firm user {FIRM['email']} and company CONTABIL EXPERT SRL ({FIRM['cif']})")
    firm_token = user(api, FIRM)
    company(api, firm_token, FIRM["cif"])

    step(2, total, "e-Factura authorization at the ANAF emulator with the firm's certificate")
    authorize(api, firm_token, FIRM["cif"], FIRM["certificate"])
    api.call("PATCH", f"/api/portfolio/companies/{FIRM['cif']}", firm_token,
             json={"provides_accounting_services": True})

    step(3, total, "discovering the firm's clients from its certificate")
    discovered = wait_for("discovery", lambda: api.call(
        "GET", f"/api/portfolio/companies/{FIRM['cif']}/discovered", firm_token).json().get("companies") or None)
    clients = [c for c in discovered if c["cif"] != FIRM["cif"]]
    print(f"        found {len(clients)} client companies", flush=True)

    step(4, total, "inviting the clients (e-mails land in the SMTP capture)")
    items = []
    for i, c in enumerate(clients):
        cif = c.get("cif")
        if cif == FIRM["cif"] or c.get("invited") or c.get("collaborating"):
            continue
        email = CLIENT["email"] if cif == CLIENT["cif"] else f"contact{i}@client-{cif}.demo"
        name = CLIENT["name"] if cif == CLIENT["cif"] else f"Reprezentant {c.get('name', cif)}"
        items.append({"client_cif": cif, "name": name, "email": email, "phone": f"07{22000000 + i:08d}"})
    if items:
        wait_for("invitations to be accepted by the service", lambda: api.call(
            "POST", "/api/invitations", firm_token, json={"firm_cif": FIRM["cif"], "invitations": items},
            ok=(201, 207, 409)).status_code in (201, 207), timeout=60)

    step(5, total, f"client {CLIENT['email']} signs up from the e-mailed link and accepts")
    client_token = user(api, CLIENT)
    received = api.call("GET", "/api/invitations/received", client_token).json()
    received = received if isinstance(received, list) else received.get("items", [])
    if not received:
        token = wait_for("the invitation e-mail", lambda: invitation_token(CLIENT["email"]))
        inv = api.call("POST", "/api/invitations/claim", client_token, json={"token": token}).json()
    else:
        inv = received[0]
    if inv.get("status") != "accepted":
        # the firm's certificate covers the client, so the claim verified her as its owner: she may consent
        wait_for("the client to be verified and accept", lambda: api.call(
            "POST", f"/api/invitations/{inv['id']}/accept", client_token, ok=(200, 201, 403, 409)
        ).status_code in (200, 201, 409), timeout=60)

    step(6, total, f"carrier TRANS RAPID LOGISTIC SRL ({CARRIER['cif']}) authorizes e-Transport")
    carrier_token = user(api, CARRIER)
    company(api, carrier_token, CARRIER["cif"])
    authorize(api, carrier_token, CARRIER["cif"], CARRIER["certificate"])

    step(7, total, "syncing invoices of the firm and its clients")
    for cif in [FIRM["cif"], CLIENT["cif"]]:
        wait_for(f"efactura to know {cif}", lambda cif=cif: api.call(
            "POST", f"/api/efactura/companies/{cif}/sync", firm_token, ok=(200, 202, 403, 404, 409)
        ).status_code in (200, 202), timeout=60)

    step(8, total, "polling transports of the carrier")
    wait_for("etransport to know the carrier", lambda: api.call(
        "POST", f"/api/etransport/companies/{CARRIER['cif']}/poll", carrier_token, ok=(200, 202, 403, 404, 409)
    ).status_code in (200, 202), timeout=60)

    print(f"    demo users (password {PASSWORD}): {FIRM['email']} (firm), {CLIENT['email']} (client), "
          f"{CARRIER['email']} (carrier)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
