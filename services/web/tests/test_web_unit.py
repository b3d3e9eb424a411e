"""spvhub web without a browser: what it may reach, its texts, its links, CSRF, cookie and headers. The platform
behind the gateway is replaced by a recording transport here; the browser tests (tests/e2e) use the real one."""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from spvhub_web import pages
from spvhub_web.bootstrap import build_app
from spvhub_web.session import COOKIE
from spvhub_web.settings import Settings

PKG = Path(pages.__file__).parent


def client(calls: list[httpx.Request] | None = None, **kw: object) -> TestClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if calls is not None:
            calls.append(request)
        return httpx.Response(401, json={"error": {"code": "invalid_credentials", "message": "no", "details": {}}})
    kw.setdefault("anaf_emulator_url", "")  # not whatever the shell exported
    settings = Settings(env="test", gateway_url="http://gateway.test", **kw)  # type: ignore[arg-type]
    return TestClient(build_app(settings, transport=httpx.MockTransport(handler)), base_url="http://web.test")


ANA = {"id": "u1", "name": "Ana", "email": "ana@example.ro"}
NOT_FOUND = {"error": {"code": "not_found", "message": "no", "details": {}}}
Routes = Callable[[httpx.Request], "httpx.Response | None"]


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


@contextmanager
def platform(routes: Routes, calls: list[httpx.Request] | None = None,
             me: dict[str, object] | None = None) -> Iterator[TestClient]:
    """spvhub web in front of a recording gateway that knows Ana (login, /me: `me` added) and answers `routes`,
    anything else 404."""
    def handler(request: httpx.Request) -> httpx.Response:
        if calls is not None:
            calls.append(request)
        if request.url.path == "/api/auth/login":
            return httpx.Response(200, json={"access_token": "a", "refresh_token": "r", "user": ANA})
        if request.url.path == "/api/auth/me":
            return httpx.Response(200, json={**ANA, "email_verified": True, **(me or {})})
        answer = routes(request)
        return answer if answer is not None else httpx.Response(404, json=NOT_FOUND)
    settings = Settings(env="test", gateway_url="http://gateway.test", anaf_emulator_url="")
    with TestClient(build_app(settings, transport=httpx.MockTransport(handler)), base_url="http://web.test") as c:
        yield c


def log_in(c: TestClient, **headers: str) -> None:
    token = csrf(c.get("/login").text)
    c.post("/login", data={"email": "ana@example.ro", "password": "parola-buna-123", "csrf": token}, headers=headers,
           follow_redirects=False)


def test_settings_have_no_database_and_only_the_gateway_as_outbound_base() -> None:
    fields = set(Settings.model_fields)
    assert not {f for f in fields if f.startswith(("pg_", "kafka", "s3_", "database", "dsn"))}, fields
    urls = {f for f in fields if f.endswith(("_url", "_base", "_uri", "_endpoint"))}
    # the two ANAF ones only name the authorize page's origin in the CSP's form-action
    assert urls == {"gateway_url", "public_url", "anaf_oauth_base", "anaf_emulator_url"}, urls
    # public_url is only where people reach the web (cookie Secure, links it builds); no client is built on it
    code = "\n".join(p.read_text() for p in PKG.glob("*.py"))
    assert code.count("httpx.AsyncClient(") == 1 and "base_url=self.base_url" in (PKG / "gateway.py").read_text()
    assert "/internal" not in code and "service_token" not in code and "X-Service-Token" not in code


def test_outside_dev_a_real_session_key_is_required() -> None:
    with pytest.raises(ValueError, match="session_key"):
        Settings(env="prod")
    assert Settings(env="prod", session_key="k" * 40).env == "prod"


def test_catalogues_have_the_same_keys_and_cover_every_literal_text() -> None:
    ro = json.loads((PKG / "locales" / "ro.json").read_text())
    en = json.loads((PKG / "locales" / "en.json").read_text())
    assert set(ro) == set(en)
    used = set()
    for f in [*PKG.glob("templates/*.html"), *PKG.glob("*.py")]:
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_][a-z_.0-9]*[a-z0-9_])["']""", f.read_text()))
    assert not used - set(ro), sorted(used - set(ro))


def test_every_link_the_platform_sends_resolves_to_a_screen() -> None:
    from spvhub_notifier.domain import KINDS
    sample = {"cif": "39812755", "firm_cif": "39812755", "client_cif": "18453276", "submission_id": "s-1",
              "invitation_id": "i-1"}
    from spvhub_auth.settings import Settings as AuthSettings
    from spvhub_invitations.settings import Settings as InvitationSettings
    auth = AuthSettings(env="test")
    paths = [k.link.format(**sample) for k in KINDS.values() if k.link]
    paths += [InvitationSettings(env="test").ui_join_path.format(token="t"),
              auth.verify_email_path.format(token="t"), auth.reset_password_path.format(token="t")]
    regexes = [r.path_regex for r in pages.router.routes if "GET" in getattr(r, "methods", set())]
    for p in paths:
        assert any(rx.match(p.split("?")[0]) for rx in regexes), p


def test_the_gateway_routes_every_screen_to_the_web() -> None:
    from spvhub_devtools.gateway_conf import route_matches, routes, web_routes
    for r in pages.router.routes:
        path = r.path.split("{")[0].rstrip("/") or "/"
        assert any(route_matches(w, path) for w in web_routes()), r.path
        assert not any(route_matches(a, path) for a in routes()), r.path  # never an API path


def test_a_post_without_the_csrf_token_is_refused_and_reaches_nothing() -> None:
    calls: list[httpx.Request] = []
    with client(calls) as c:
        c.get("/login")
        r = c.post("/login", data={"email": "a@b.ro", "password": "x" * 12})
        assert r.status_code == 403 and "csrf_failed" in r.text
        r = c.post("/login", data={"email": "a@b.ro", "password": "x" * 12, "csrf": "forged"})
        assert r.status_code == 403
    assert calls == []


def test_session_cookie_and_security_headers() -> None:
    calls: list[httpx.Request] = []
    with client(calls) as c:
        r = c.get("/login")
        assert r.status_code == 200 and 'lang="ro"' in r.text  # Romanian by default
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        # forms go to the web, and redirect only to ANAF's authorize page (Chrome checks redirects too)
        assert csp.endswith("; form-action 'self' https://logincert.anaf.ro")
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["cache-control"] == "no-store"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(COOKIE + "=") and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace(
            "Lax", "lax") and "Secure" not in cookie
        assert "<script>" not in r.text and " style=" not in r.text  # no inline script or style
        token = re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)  # type: ignore[union-attr]
        r = c.post("/login", data={"email": "a@b.ro", "password": "wrong-password", "csrf": token})
        assert r.status_code == 401 and "E-mailul sau parola nu sunt corecte" in r.text
        assert [str(x.url) for x in calls] == ["http://gateway.test/api/auth/login"]
        r = c.post("/lang", data={"locale": "en", "next": "//evil.example/", "csrf": token}, follow_redirects=False)
        assert r.headers["location"] == "/"  # never an open redirect
        assert 'lang="en"' in c.get("/login").text
    with client(public_url="https://spv.example.ro") as c:
        assert "Secure" in c.get("/login").headers["set-cookie"]


def test_a_page_that_needs_a_person_sends_to_login_and_back() -> None:
    with client() as c:
        r = c.get("/companies/39812755/invoices?type=invoice", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/login?next=/companies/39812755/invoices%3Ftype%3Dinvoice"


def test_person_facing_links_come_from_one_ui_base_and_a_path_per_kind() -> None:
    from spvhub_invitations.settings import Settings as InvitationSettings
    from spvhub_notifier.domain import action_url
    from spvhub_notifier.settings import Settings as NotifierSettings
    inv = InvitationSettings(env="test")
    assert inv.ui_join_path.format(token="t") == "/join?invitation=t"  # spvhub web's /join (gateway-routed)
    n = NotifierSettings(env="test", public_base_url="http://gw.test", ui_base_url="https://app.example.ro")
    assert n.links_base == "https://app.example.ro"
    assert action_url(n.links_base, "invoice_digest", {"cif": "1"}) == "https://app.example.ro/companies/1/invoices"
    assert action_url(n.links_base, "invoice_digest", {"cif": "1"}, {"invoice_digest": "/firme/{cif}/facturi"}) \
        == "https://app.example.ro/firme/1/facturi"


def test_form_action_names_the_anaf_authorize_origin_the_platform_uses() -> None:
    emu = Settings(env="test", anaf_emulator_url="http://127.0.0.1:18080/", anaf_oauth_base="https://x.example")
    assert emu.anaf_authorize_origin == "http://127.0.0.1:18080"
    real = Settings(env="prod", session_key="k" * 40, anaf_oauth_base="https://logincert.anaf.ro/")
    assert real.anaf_authorize_origin == "https://logincert.anaf.ro"
    with client(anaf_emulator_url="http://emulator.test:8080") as c:
        csp = c.get("/login").headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["form-action"] == "'self' http://emulator.test:8080"
    assert directives["default-src"] == "'self'" and directives["script-src"] == "'self'"


def test_account_lists_sessions_and_ends_another_with_a_csrf_protected_form() -> None:
    calls: list[httpx.Request] = []
    revoked: list[str] = []

    def routes(request: httpx.Request) -> httpx.Response | None:
        path = request.url.path
        if path == "/api/auth/sessions":
            items = [{"id": "fam-this", "created_at": "2026-12-01T08:00:00+00:00", "current": True,
                      "last_used_at": "2026-12-07T08:00:00+00:00", "user_agent": "Firefox", "address": "10.1.1.1"},
                     {"id": "fam-phone", "created_at": "2026-11-01T08:00:00+00:00", "current": False,
                      "last_used_at": "2026-11-02T08:00:00+00:00", "user_agent": "Telefon", "address": None}]
            return httpx.Response(200, json={"items": [i for i in items if i["id"] not in revoked]})
        if path.startswith("/api/auth/sessions/") and path.endswith("/revoke"):
            revoked.append(path.split("/")[4])
            return httpx.Response(204)
        return None

    with platform(routes, calls) as c:
        log_in(c, **{"user-agent": "Firefox"})
        login = next(x for x in calls if x.url.path == "/api/auth/login")
        assert login.headers["user-agent"] == "Firefox"  # the session is named by the person's browser
        page = c.get("/account")
        assert page.status_code == 200 and "Sesiuni deschise" in page.text and "sesiunea aceasta" in page.text
        assert 'action="/account/sessions/fam-phone/revoke"' in page.text
        assert 'action="/account/sessions/fam-this/revoke"' not in page.text  # this one ends with "log out"
        token = csrf(page.text)
        before = len(calls)
        r = c.post("/account/sessions/fam-phone/revoke", data={"csrf": "forged"})
        assert r.status_code == 403 and len(calls) == before and revoked == []  # refused before any call
        r = c.post("/account/sessions/fam-phone/revoke", data={"csrf": token}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/account#sessions" and revoked == ["fam-phone"]
        page = c.get("/account")
        assert "Sesiunea a fost închisă" in page.text and "Telefon" not in page.text


def _login_from(peer: str, trusted: list[str], headers: dict[str, str]) -> list[httpx.Request]:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(401, json={"error": {"code": "invalid_credentials", "message": "no", "details": {}}})
    settings = Settings(env="test", gateway_url="http://gateway.test", anaf_emulator_url="", trusted_proxies=trusted)
    with TestClient(build_app(settings, transport=httpx.MockTransport(handler)), base_url="http://web.test",
                    client=(peer, 50000)) as c:
        page = c.get("/login", headers=headers)
        c.post("/login", data={"csrf": csrf(page.text), "email": "a@example.ro", "password": "x"}, headers=headers)
    return calls


def test_the_web_forwards_the_persons_address_its_trusted_proxy_named() -> None:
    calls = _login_from("127.0.0.1", ["127.0.0.1/32"],
                        {"X-Forwarded-For": "127.0.0.20, 127.0.0.1", "User-Agent": "Browser/1"})
    [login] = [r for r in calls if r.url.path == "/api/auth/login"]
    assert login.headers.get_list("x-forwarded-for") == ["127.0.0.20"]
    assert login.headers["user-agent"] == "Browser/1"


def test_the_web_ignores_a_forwarded_for_from_an_untrusted_peer() -> None:
    calls = _login_from("127.0.0.9", ["127.0.0.1/32"], {"X-Forwarded-For": "198.51.100.1"})
    [login] = [r for r in calls if r.url.path == "/api/auth/login"]
    assert login.headers.get_list("x-forwarded-for") == ["127.0.0.9"]   # the peer itself, never the claim
    calls = _login_from("127.0.0.1", [], {"X-Forwarded-For": "198.51.100.1"})   # no trusted proxies at all
    assert [r.headers.get_list("x-forwarded-for") for r in calls if r.url.path == "/api/auth/login"] == [["127.0.0.1"]]


def test_the_transports_screen_pages_by_the_cursor_the_api_gives() -> None:
    calls: list[httpx.Request] = []
    item = {"uit": "UIT1", "carrier_cif": "31000019", "state": "active", "transport_date": "2026-03-02",
            "declarant_cif": "12000012", "declarant_name": None, "vehicle": "B12ABC", "trailer1": None,
            "vehicle_change_count": 0, "route_start": "Cluj", "route_end": "Arad", "uit_expires_at": None,
            "uit_expires_on": "2026-03-07"}

    def routes(request: httpx.Request) -> httpx.Response | None:
        path = request.url.path
        if path == "/api/etransport/transports":
            last = request.url.params.get("cursor") == "Y3Vyc29y"
            return httpx.Response(200, json={"items": [item], "next_cursor": None if last else "Y3Vyc29y",
                                             "total": 51})
        return None

    with platform(routes, calls) as c:
        log_in(c)
        page = c.get("/companies/31000019/transports?state=active")
        asked = [x for x in calls if x.url.path == "/api/etransport/transports"][-1].url.params
        assert (asked["limit"], asked["company"], asked["state"]) == ("50", "31000019", "active")
        assert "cursor" not in asked and "page" not in asked
        assert page.status_code == 200 and "UIT1" in page.text and "51 transporturi" in page.text
        assert 'href="/transports?state=active&amp;company=31000019&amp;cursor=Y3Vyc29y"' in page.text
        assert "Pagina următoare" in page.text
        page = c.get("/transports?state=active&company=31000019&cursor=Y3Vyc29y")
        asked = [x for x in calls if x.url.path == "/api/etransport/transports"][-1].url.params
        assert asked["cursor"] == "Y3Vyc29y" and asked["company"] == "31000019"
        assert page.status_code == 200 and "Pagina următoare" not in page.text  # the last page has no next link


def test_the_firms_invitations_screen_lists_every_page_the_api_gives() -> None:
    calls: list[httpx.Request] = []

    def inv(n: int) -> dict[str, object]:
        return {"id": f"inv-{n}", "firm_cif": "39812755", "firm_name": "Contabil", "client_cif": f"1845327{n}",
                "client_name": f"Client {n}", "name": "Ana", "email": "ana@example.ro", "phone": "+40722123456",
                "locale": "ro", "status": "pending", "created_at": "2026-12-01T08:00:00Z",
                "sent_at": "2026-12-01T08:00:00Z", "expires_at": "2026-12-16T08:00:00Z", "send_count": 1,
                "claimed_by": None, "claimed_at": None, "answered_at": None, "expired_at": None, "revoked_at": None}

    def routes(request: httpx.Request) -> httpx.Response | None:
        path = request.url.path
        if path == "/api/portfolio/companies/39812755":
            return httpx.Response(200, json={"cif": "39812755", "name": "Contabil", "role": "owner"})
        if path == "/api/invitations":
            second = request.url.params.get("cursor") == "bmV4dA"
            return httpx.Response(200, json={"items": [inv(2 if second else 1)],
                                             "next_cursor": None if second else "bmV4dA", "total": None})
        return None

    with platform(routes, calls) as c:
        log_in(c)
        page = c.get("/companies/39812755/invitations")
        asked = [x.url.params for x in calls if x.url.path == "/api/invitations"]
        assert [(a["firm_cif"], a["limit"], a.get("cursor")) for a in asked] == \
            [("39812755", "500", None), ("39812755", "500", "bmV4dA")]
        assert page.status_code == 200 and "/invitations/inv-1/revoke" in page.text
        assert "/invitations/inv-2/revoke" in page.text  # the second page's invitation too


def test_preferences_send_the_language_to_the_profile_not_to_the_notifier() -> None:
    calls: list[httpx.Request] = []
    prefs = {"locale": "ro", "locales": ["ro", "en"], "email": {"invoice_digest": True},
             "companies": [{"cif": "22222220", "name": "Firma X SRL", "invoice_digest": True}]}

    def routes(request: httpx.Request) -> httpx.Response | None:
        path = request.url.path
        if path == "/api/notifier/preferences":
            return httpx.Response(200, json=prefs)
        return None

    with platform(routes, calls, me={"locale": "en"}) as c:
        log_in(c)
        page = c.get("/preferences")
        token = csrf(page.text)
        r = c.post("/preferences", data={"csrf": token, "locale": "en", "email_invoice_digest": "on"},
                   follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/preferences"
    profile = [x for x in calls if x.url.path == "/api/auth/me" and x.method == "PATCH"]
    assert [json.loads(x.content) for x in profile] == [{"locale": "en"}]
    [put] = [x for x in calls if x.url.path == "/api/notifier/preferences" and x.method == "PUT"]
    assert json.loads(put.content) == {"email": {"invoice_digest": True},
                                       "companies": [{"cif": "22222220", "invoice_digest": False}]}


def test_a_natural_person_is_shown_by_the_id_the_api_chose_and_linked_by_key() -> None:
    """The CNP a person types to add a company goes in a request body, never in an address; the company is then
    linked by its person key and shown with the `tax_id` the API decided (masked here)."""
    calls: list[httpx.Request] = []
    cnp, key, masked = "1850315124561", "PFABCDEFGHIJKL", "1********4561"
    company = {"cif": key, "kind": "cnp", "tax_id": masked, "name": "Persoană fizică", "role": "member",
               "relation": "own", "verification": "unverified"}

    def routes(request: httpx.Request) -> httpx.Response | None:
        path = request.url.path
        if path == "/api/portfolio/companies" and request.method == "POST":
            return httpx.Response(201, json=company)
        if path == "/api/portfolio/companies":
            return httpx.Response(200, json={"companies": [company], "count": 1})
        return None

    with platform(routes, calls) as c:
        log_in(c)
        token = csrf(c.get("/companies").text)
        r = c.post("/companies/lookup", data={"cif": cnp, "csrf": token}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/companies/{key}"
        [reg] = [x for x in calls if x.url.path == "/api/portfolio/companies" and x.method == "POST"]
        assert json.loads(reg.content) == {"cif": cnp}
        assert not any(cnp in str(x.url) for x in calls)  # never in an address
        page = c.get("/companies")
        assert f'href="/companies/{key}"' in page.text and f"CNP {masked}" in page.text and cnp not in page.text


def test_a_firms_natural_person_client_and_its_invitation_are_shown_masked_and_linked_by_key() -> None:
    """The firm's portfolio screen and the invitation's sign-up page show a natural person client as the APIs decided
    (the CNP masked), while the forms and links carry the person key."""
    key, masked = "PFABCDEFGHIJKL", "1********4561"
    client = {"cif": key, "kind": "cnp", "tax_id": masked, "name": "Persoană fizică", "collaboration_status": None,
              "invitation_status": None, "spv_rights": True, "blocked_by": ["not_invited"]}
    invitation = {"id": "inv-9", "firm_cif": "39812755", "firm_name": "Contabil", "client_cif": key,
                  "client_kind": "cnp", "client_tax_id": masked, "client_name": "Persoană fizică", "name": "Radu",
                  "email": "radu@example.ro", "phone": "+40722123456", "locale": "ro", "status": "pending",
                  "created_at": "2026-12-01T08:00:00Z", "sent_at": "2026-12-01T08:00:00Z",
                  "expires_at": "2026-12-16T08:00:00Z", "send_count": 1, "claimed_by": None, "claimed_at": None,
                  "answered_at": None, "expired_at": None, "revoked_at": None}
    preview = {"invitation_id": "inv-9", "status": "pending", "expires_at": "2026-12-16T08:00:00Z",
               "firm": {"cif": "39812755", "name": "Contabil"},
               "client_company": {"cif": key, "kind": "cnp", "tax_id": masked, "name": "Persoană fizică",
                                  "address": "", "trade_register_no": ""},
               "representative": {"name": "Radu", "email": "radu@example.ro"}}

    def routes(request: httpx.Request) -> httpx.Response | None:
        path = request.url.path
        if path == "/api/portfolio/companies/39812755":
            return httpx.Response(200, json={"cif": "39812755", "name": "Contabil", "role": "owner"})
        if path == "/api/portfolio/companies/39812755/portfolio-status":
            return httpx.Response(200, json={"firm_cif": "39812755", "ready": True, "blockers": [],
                                             "clients": [client]})
        if path == "/api/invitations":
            return httpx.Response(200, json={"items": [invitation], "next_cursor": None})
        if path == "/api/invitations/preview":
            return httpx.Response(200, json=preview)
        return None

    with platform(routes, None) as c:
        join = c.get("/join?invitation=tok")
        assert join.status_code == 200 and f"CNP {masked}" in join.text and f"CIF {key}" not in join.text
        log_in(c)
        page = c.get("/companies/39812755/invitations")
        assert page.status_code == 200
        assert f'data-cif="{key}"' in page.text and f'name="email_{key}"' not in page.text  # already invited
        assert page.text.count(f"CNP {masked}") == 2 and f"CIF {key}" not in page.text
