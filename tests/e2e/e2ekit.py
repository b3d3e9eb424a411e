"""Helpers for end-to-end tests: a person at ANAF's certificate page, users, polling."""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx

T = TypeVar("T")
# The ANAF callback makes ANAF calls (code exchange, rights check) through the budget shared with every
# service; when a sync has filled the current minute's window the call waits for the next one (< 60 s).
CALLBACK_TIMEOUT = 90
PASSWORD = "parola-de-test-2026"
# The SMTP capture of the system each base URL (auth, gateway, web) belongs to: System.start registers them, so a
# sign-up can confirm its address from the e-mail like a person does.
MAILBOXES: dict[str, str] = {}


class CertificatePage(HTMLParser):
    """Reads the form a person fills at logincert: hidden fields, certificates to pick from, the PIN."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.hidden: dict[str, str] = {}
        self.certificates: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a.get("action", "")
        elif tag == "input" and a.get("type") == "hidden":
            self.hidden[a["name"]] = a.get("value", "")
        elif tag == "input" and a.get("type") == "radio" and a.get("name") == "certificate":
            self.certificates.append(a["value"])


def authorize_at_anaf(authorize_url: str, certificate: str, pin: str = "1234") -> str:
    """Play the person: open the page, pick the certificate, enter the PIN; returns ANAF's redirect URL."""
    page = httpx.get(authorize_url, timeout=30)
    assert page.status_code == 200, page.text
    form = CertificatePage()
    form.feed(page.text)
    assert certificate in form.certificates, form.certificates
    answer = httpx.post(urljoin(authorize_url, form.action), timeout=30,
                        data={**form.hidden, "certificate": certificate, "pin": pin, "action": "login"})
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


class Client:
    """A signed-in platform user talking to one service base URL per call."""

    def __init__(self, token: str, user: dict[str, Any]) -> None:
        self.token = token
        self.user = user

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return httpx.get(url, headers=self.headers, timeout=60, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return httpx.post(url, headers=self.headers, timeout=60, **kw)

    def patch(self, url: str, **kw: Any) -> httpx.Response:
        return httpx.patch(url, headers=self.headers, timeout=60, **kw)


def signup(auth_url: str, email: str, name: str, locale: str = "ro", *, confirm: bool = True) -> Client:
    """A new account; with `confirm` its address is confirmed from the verification e-mail (no company is verified
    for a person whose e-mail is not)."""
    r = httpx.post(f"{auth_url}/api/auth/signup", json={"email": email, "password": PASSWORD, "name": name,
                                                         "locale": locale}, timeout=30)
    assert r.status_code == 201, r.text
    body = r.json()
    if confirm:
        confirm_email(auth_url, email)
        body["user"]["email_verified"] = True
    return Client(body["access_token"], body["user"])


def verification_token(mailbox: str, email: str) -> str | None:
    mails = httpx.get(f"{mailbox}/messages", params={"to": email.lower()}, timeout=10).json()
    for m in reversed(mails):
        found = re.search(r"verify-email\?token=([\w\-]+)", m.get("text", ""))
        if found:
            return found.group(1)
    return None


def confirm_email(base_url: str, email: str, timeout: float = 60.0) -> None:
    """Open the link of the verification e-mail (read from the system's SMTP capture), as the person would."""
    mailbox = MAILBOXES.get(base_url.rstrip("/"))
    assert mailbox, f"no SMTP capture known for {base_url}"
    token = eventually(lambda: verification_token(mailbox, email), f"the verification e-mail to {email}", timeout)
    r = httpx.post(f"{base_url}/api/auth/email/verify", json={"token": token}, timeout=30)
    assert r.status_code == 200, r.text


def eventually(fn: Callable[[], T | None], what: str, timeout: float = 60.0, interval: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {str(last)[:300]})")


def link_token(mail: dict[str, Any]) -> str:
    found = re.search(r"invitation=([\w\-]+)", mail.get("text", "") + mail.get("html", ""))
    assert found, mail
    return found.group(1)


def callback_path(location: str) -> str:
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}"
