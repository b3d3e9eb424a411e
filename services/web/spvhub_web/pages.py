"""The screens: each route reads the person's session, calls the public gateway API with their own token and
renders a template; every POST carries the session's CSRF token. No business rules live here: what the
platform refuses is shown with its stable code, explained in the person's language."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from spvhub_common.ids import strip_ro

from spvhub_web.gateway import ApiError, Gateway, NotSignedIn
from spvhub_web.i18n import LOCALES, Translator
from spvhub_web.session import Session

router = APIRouter(include_in_schema=False)
CIF_PATH = "{cif}"


# ---------------------------------------------------------------------------------------------- helpers

def sess(request: Request) -> Session:
    return request.state.session  # type: ignore[no-any-return]


def gw(request: Request) -> Gateway:
    return request.app.state.gateway  # type: ignore[no-any-return]


def tr(request: Request) -> Translator:
    return Translator(sess(request).get("locale", "ro"))


def _lang(request: Request, kw: dict[str, Any]) -> dict[str, Any]:
    # the services word their refusals in the person's language when they can
    kw["headers"] = {"accept-language": tr(request).locale, **(kw.get("headers") or {})}
    return kw


async def api(request: Request, method: str, path: str, **kw: Any) -> Any:
    """The person's own call to the public API (their token; refreshed once when expired)."""
    return await gw(request).call(method, path, sess(request), request_id=request.state.request_id,
                                  **_lang(request, kw))


def _browser(request: Request) -> dict[str, str]:
    # a session is listed on the account screen by the browser that opened it, not by this server's HTTP client
    ua = request.headers.get("user-agent", "")[:400]
    return {"user-agent": ua} if ua else {}


async def public_api(request: Request, method: str, path: str, **kw: Any) -> Any:
    """A call without a token (sign-up, log-in, invitation preview, delegation link, ANAF callback)."""
    return await gw(request).call(method, path, None, auth=False, request_id=request.state.request_id,
                                  **_lang(request, kw))


def require_signed_in(request: Request) -> None:
    if not sess(request).signed_in:
        raise NotSignedIn()


def safe_next(value: str | None, default: str = "/companies") -> str:
    """Only a path on this site: never `//host` or a scheme (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def flash(request: Request, kind: str, text: str, **extra: Any) -> None:
    s = sess(request)
    s.set(flash=[*s.get("flash", []), {"kind": kind, "text": text, **extra}])


def err_text(t: Translator, e: ApiError) -> str:
    """Our catalogue's wording for a known code, else the platform's own message (asked in the person's
    language)."""
    return t(f"err.{e.code}") if t.has(f"err.{e.code}") else e.message


class CsrfRefused(Exception):
    pass


async def form(request: Request) -> dict[str, Any]:
    """The posted form, after checking its CSRF token against the session's."""
    data = await request.form()
    if not sess(request).csrf_ok(str(data.get("csrf") or "")):
        raise CsrfRefused()
    out: dict[str, Any] = {}
    for k in data:
        values = data.getlist(k)
        out[k] = values if len(values) > 1 else values[0]
    return out


def _strs(v: Any) -> list[str]:
    if v is None:
        return []
    return [str(x) for x in v] if isinstance(v, list) else [str(v)]


def render(request: Request, template: str, ctx: dict[str, Any] | None = None, status: int = 200) -> Response:
    s = sess(request)
    t = tr(request)
    messages = s.get("flash", [])
    if messages:
        s.pop("flash")
    base = {"request": request, "t": t, "session": s, "user": s.get("user") if s.signed_in else None,
            "csrf": s.csrf, "locale": t.locale, "locales": LOCALES, "flashes": messages,
            "unread": getattr(request.state, "unread", None), "path": request.url.path,
            "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            "err_text": lambda e: err_text(t, e)}
    base.update(ctx or {})
    return request.app.state.templates.TemplateResponse(request, template, base, status_code=status)


async def page(request: Request, template: str, ctx: dict[str, Any] | None = None, status: int = 200) -> Response:
    """render() plus the bell's unread count for a signed-in person."""
    if sess(request).signed_in and getattr(request.state, "unread", None) is None:
        try:
            request.state.unread = (await api(request, "GET", "/api/notifier/notifications/unread-count")).get("unread")
        except (ApiError, NotSignedIn):
            request.state.unread = None
    return render(request, template, ctx, status)


def _one_of(value: str, *allowed: str) -> None:
    if value not in allowed:
        raise HTTPException(404)


# ---------------------------------------------------------------------------------------------- home, language

@router.get("/")
async def home(request: Request) -> Response:
    return see_other("/companies" if sess(request).signed_in else "/login")


@router.post("/lang")
async def set_language(request: Request) -> Response:
    f = await form(request)
    loc = str(f.get("locale", "ro"))
    if loc in LOCALES:
        sess(request).set(locale=loc)
        if sess(request).signed_in:  # e-mails and notifications follow the person's language too
            try:
                await api(request, "PATCH", "/api/auth/me", json={"locale": loc})
            except (ApiError, NotSignedIn):
                pass
    return see_other(safe_next(str(f.get("next") or ""), "/"))


# ---------------------------------------------------------------------------------------------- accounts

@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:  # noqa: A002
    return render(request, "login.html", {"next": safe_next(next, ""), "email": ""})


@router.post("/login")
async def login(request: Request) -> Response:
    f = await form(request)
    email, nxt = str(f.get("email", "")).strip(), safe_next(str(f.get("next") or ""))
    try:
        tokens = await public_api(request, "POST", "/api/auth/login", headers=_browser(request),
                                  json={"email": email, "password": str(f.get("password", ""))})
    except ApiError as e:
        return render(request, "login.html", {"next": nxt, "email": email, "error": e}, status=e.status)
    sess(request).sign_in(tokens)
    return see_other(nxt)


@router.get("/signup")
async def signup_form(request: Request, invitation: str | None = None) -> Response:
    ctx: dict[str, Any] = {"invitation": invitation or "", "name": "", "email": "", "preview": None}
    if invitation:
        try:
            ctx["preview"] = await public_api(request, "GET", "/api/invitations/preview", params={"token": invitation})
            rep = ctx["preview"].get("representative") or {}
            ctx["name"], ctx["email"] = rep.get("name", ""), rep.get("email", "")
        except ApiError as e:
            ctx["invitation_error"] = e
    return render(request, "signup.html", ctx)


@router.post("/signup")
async def signup(request: Request) -> Response:
    f = await form(request)
    invitation = str(f.get("invitation") or "")
    body = {"email": str(f.get("email", "")).strip(), "password": str(f.get("password", "")),
            "name": str(f.get("name", "")).strip(), "locale": tr(request).locale}
    ctx: dict[str, Any] = {"invitation": invitation, "name": body["name"], "email": body["email"], "preview": None}
    if f.get("password") != f.get("password2"):
        ctx["error"] = ApiError(422, "passwords_differ", "The two passwords differ.")
        return render(request, "signup.html", ctx, status=422)
    preview = None
    if invitation:
        try:
            preview = await public_api(request, "GET", "/api/invitations/preview", params={"token": invitation})
            body["invitation_id"] = preview.get("invitation_id")
        except ApiError as e:
            ctx["invitation_error"] = e
            return render(request, "signup.html", ctx, status=e.status)
    try:
        tokens = await public_api(request, "POST", "/api/auth/signup", json=body, headers=_browser(request))
    except ApiError as e:
        ctx.update(error=e, preview=preview)
        return render(request, "signup.html", ctx, status=e.status)
    sess(request).sign_in(tokens)
    if invitation:
        return await _claim(request, invitation)
    return see_other("/companies")


@router.post("/logout")
async def logout(request: Request) -> Response:
    await form(request)
    rt = sess(request).get("refresh_token")
    if rt:
        try:
            await public_api(request, "POST", "/api/auth/logout", json={"refresh_token": rt})
        except ApiError:
            pass
    sess(request).sign_out()
    flash(request, "ok", tr(request)("auth.logged_out"))
    return see_other("/login")


@router.get("/verify-email")
async def verify_email_page(request: Request, token: str = "") -> Response:
    """The link in the verification e-mail. Confirming is a button (POST): mail scanners that open links must not
    spend the single-use token."""
    return render(request, "account_token.html", {"token": token, "kind": "verify"})


@router.post("/verify-email")
async def verify_email(request: Request) -> Response:
    f = await form(request)
    t = tr(request)
    try:
        await public_api(request, "POST", "/api/auth/email/verify", json={"token": str(f.get("token", ""))})
    except ApiError as e:
        return render(request, "account_token.html", {"token": "", "kind": "verify", "error": e}, status=e.status)
    flash(request, "ok", t("account.verified"))
    return see_other("/account" if sess(request).signed_in else "/login")


@router.get("/forgot-password")
async def forgot_password_page(request: Request) -> Response:
    return render(request, "account_token.html", {"kind": "forgot"})


@router.post("/forgot-password")
async def forgot_password(request: Request) -> Response:
    f = await form(request)
    try:
        await public_api(request, "POST", "/api/auth/password/forgot", json={"email": str(f.get("email", "")).strip()})
    except ApiError as e:
        return render(request, "account_token.html", {"kind": "forgot", "error": e}, status=e.status)
    # the same answer whether or not the address has an account
    flash(request, "ok", tr(request)("account.reset_sent"))
    return see_other("/login")


@router.get("/reset-password")
async def reset_password_page(request: Request, token: str = "") -> Response:
    return render(request, "account_token.html", {"token": token, "kind": "reset"})


@router.post("/reset-password")
async def reset_password(request: Request) -> Response:
    f = await form(request)
    token = str(f.get("token", ""))
    if f.get("password") != f.get("password2"):
        e = ApiError(422, "passwords_differ", "The two passwords differ.")
        return render(request, "account_token.html", {"token": token, "kind": "reset", "error": e}, status=422)
    try:
        await public_api(request, "POST", "/api/auth/password/reset",
                         json={"token": token, "password": str(f.get("password", ""))})
    except ApiError as e:
        return render(request, "account_token.html", {"token": token, "kind": "reset", "error": e}, status=e.status)
    sess(request).sign_out()  # every session of the account ended with the reset
    flash(request, "ok", tr(request)("account.password_reset"))
    return see_other("/login")


@router.get("/account")
async def account(request: Request) -> Response:
    require_signed_in(request)
    me = await api(request, "GET", "/api/auth/me")
    ctx: dict[str, Any] = {"me": me, "sessions": []}
    try:
        ctx["sessions"] = (await api(request, "GET", "/api/auth/sessions")).get("items", [])
    except ApiError as e:
        ctx["sessions_error"] = e
    return await page(request, "account.html", ctx)


@router.post("/account/sessions/{session_id}/revoke")
async def account_session_revoke(request: Request, session_id: str) -> Response:
    """Ends one of the person's sessions (another browser, a lost phone): its refresh token stops at once."""
    require_signed_in(request)
    await form(request)
    t = tr(request)
    try:
        await api(request, "POST", f"/api/auth/sessions/{quote(session_id, safe='')}/revoke")
        flash(request, "ok", t("account.session_revoked"))
    except ApiError as e:
        flash(request, "error", err_text(t, e))
    return see_other("/account#sessions")


@router.post("/account/{what}")
async def account_change(request: Request, what: str) -> Response:
    require_signed_in(request)
    _one_of(what, "password", "email", "resend")
    f = await form(request)
    t = tr(request)
    try:
        if what == "password":
            if f.get("new_password") != f.get("new_password2"):
                raise ApiError(422, "passwords_differ", "The two passwords differ.")
            await api(request, "POST", "/api/auth/password/change",
                      json={"current_password": str(f.get("current_password", "")),
                            "new_password": str(f.get("new_password", ""))})
        elif what == "email":
            await api(request, "POST", "/api/auth/email/change",
                      json={"new_email": str(f.get("new_email", "")).strip(), "password": str(f.get("password", ""))})
        else:
            me = await api(request, "GET", "/api/auth/me")
            await public_api(request, "POST", "/api/auth/email/verification/resend", json={"email": me["email"]})
        flash(request, "ok", t(f"account.{what}_done"))
    except ApiError as e:
        flash(request, "error", err_text(t, e))
    return see_other("/account")


# ---------------------------------------------------------------------------------------------- companies

async def _companies(request: Request) -> list[dict[str, Any]]:
    return (await api(request, "GET", "/api/portfolio/companies")).get("companies", [])


@router.get("/companies")
async def companies(request: Request) -> Response:
    require_signed_in(request)
    items = await _companies(request)
    own = [c for c in items if c.get("relation", "own") == "own"]
    clients = [c for c in items if c.get("relation") == "client"]
    return await page(request, "companies.html", {"own": own, "clients": clients})


@router.post("/companies/lookup")
async def company_lookup(request: Request) -> Response:
    """Step one of adding a company: the registry data for the CIF, shown before the person confirms."""
    require_signed_in(request)
    f = await form(request)
    raw = str(f.get("cif", "")).strip()
    cif = strip_ro(raw)  # the look-up only; portfolio's answer says what is wrong with a bad CIF
    if len(cif) == 13 and cif.isdigit():
        # a natural person's CNP: ANAF's registry has no natural persons, and a CNP never goes in an address (the
        # look-up's); it is registered from the form's body, the company then known by its person key
        return await _register(request, raw)
    try:
        reg = await api(request, "GET", f"/api/portfolio/registry/{quote(cif or raw)}")
    except ApiError as e:
        if e.status in (404, 405) and e.code in ("not_found", "http_404", "http_405"):
            # a platform without the registry look-up: register at once, the company page shows the data
            return await _register(request, raw)
        items = await _companies(request)
        return await page(request, "companies.html", {
            "own": [c for c in items if c.get("relation", "own") == "own"],
            "clients": [c for c in items if c.get("relation") == "client"], "add_error": e, "add_cif": raw},
            status=e.status)
    return await page(request, "company_confirm.html", {"reg": reg, "cif": cif})


@router.post("/companies")
async def company_add(request: Request) -> Response:
    require_signed_in(request)
    f = await form(request)
    return await _register(request, str(f.get("cif", "")).strip())


async def _register(request: Request, raw: str) -> Response:
    try:
        c = await api(request, "POST", "/api/portfolio/companies", json={"cif": raw}, ok=(200, 201))
    except ApiError as e:
        items = await _companies(request)
        return await page(request, "companies.html", {
            "own": [c for c in items if c.get("relation", "own") == "own"],
            "clients": [c for c in items if c.get("relation") == "client"], "add_error": e, "add_cif": raw},
            status=e.status)
    t = tr(request)
    if c.get("role") == "member" and c.get("verification") == "unverified":
        # the company already has a verified owner: this was a request to join, which they decide on
        flash(request, "ok", t("companies.join_requested", name=c.get("name") or c["cif"]))
    else:
        flash(request, "ok", t("companies.added", name=c.get("name") or c["cif"]))
    return see_other(f"/companies/{c['cif']}")


@router.get("/companies/" + CIF_PATH)
async def company(request: Request, cif: str) -> Response:
    require_signed_in(request)
    c = await api(request, "GET", f"/api/portfolio/companies/{quote(cif)}")
    conns: list[dict[str, Any]] = []
    conn_error = None
    try:
        conns = (await api(request, "GET", "/api/auth/anaf/connections", params={"company_cif": c["cif"]}))["items"]
    except ApiError as e:
        conn_error = e
    return await page(request, "company.html", {"c": c, "connections": conns, "conn_error": conn_error})


@router.post("/companies/" + CIF_PATH + "/profile")
async def company_profile(request: Request, cif: str) -> Response:
    require_signed_in(request)
    f = await form(request)
    await api(request, "PATCH", f"/api/portfolio/companies/{quote(cif)}",
              json={"provides_accounting_services": f.get("provides_accounting_services") == "on"})
    flash(request, "ok", tr(request)("company.profile_saved"))
    return see_other(f"/companies/{cif}")


@router.get("/companies/" + CIF_PATH + "/members")
async def members(request: Request, cif: str) -> Response:
    require_signed_in(request)
    c = await api(request, "GET", f"/api/portfolio/companies/{quote(cif)}")
    members = await _every_page(request, f"/api/portfolio/companies/{quote(cif)}/members")
    return await page(request, "members.html", {"c": c, "members": members,
                                                "is_manager": c.get("role") in ("owner", "admin")})


@router.post("/companies/" + CIF_PATH + "/members")
async def member_add(request: Request, cif: str) -> Response:
    require_signed_in(request)
    f = await form(request)
    t = tr(request)
    try:
        await api(request, "POST", f"/api/portfolio/companies/{quote(cif)}/members",
                  json={"email": str(f.get("email", "")).strip(), "role": str(f.get("role") or "member")})
        flash(request, "ok", t("members.added"))
    except ApiError as e:
        flash(request, "error", err_text(t, e))
    return see_other(f"/companies/{cif}/members")


@router.post("/companies/" + CIF_PATH + "/members/{member_id}/{action}")
async def member_change(request: Request, cif: str, member_id: str, action: str) -> Response:
    require_signed_in(request)
    _one_of(action, "role", "remove")
    f = await form(request)
    t = tr(request)
    path = f"/api/portfolio/companies/{quote(cif)}/members/{quote(member_id)}"
    try:
        if action == "remove":
            await api(request, "DELETE", path)
        else:
            await api(request, "PUT", path, json={"role": str(f.get("role") or "member")})
        flash(request, "ok", t("members.saved"))
    except ApiError as e:
        flash(request, "error", err_text(t, e))
    return see_other(f"/companies/{cif}/members")


# ---------------------------------------------------------------------------------------------- ANAF authorization

def _sign_ctx(request: Request, data: dict[str, Any]) -> str:
    key = request.app.state.settings.session_key.get_secret_value().encode()
    raw = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")
    mac = hmac.new(key, b"delegation-ctx\x00" + raw.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{raw}.{mac}"


def _read_ctx(request: Request, value: str | None) -> dict[str, Any]:
    if not value or "." not in value:
        return {}
    raw, mac = value.rsplit(".", 1)
    key = request.app.state.settings.session_key.get_secret_value().encode()
    good = hmac.new(key, b"delegation-ctx\x00" + raw.encode(), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(good, mac):
        return {}
    try:
        return dict(json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))))
    except ValueError:
        return {}


def _delegation_page_url(request: Request, api_url: str, ctx: dict[str, Any]) -> str:
    """The person-facing link for a delegation: this site's landing page, not the API's redirect."""
    token = (parse_qs(urlsplit(api_url).query).get("token") or [""])[0]
    base = request.app.state.settings.base_url
    return f"{base}/delegation?{urlencode({'token': token, 'ctx': _sign_ctx(request, ctx)})}"


@router.get("/companies/" + CIF_PATH + "/authorization")
async def authorization(request: Request, cif: str) -> Response:
    require_signed_in(request)
    c = await api(request, "GET", f"/api/portfolio/companies/{quote(cif)}")
    conns: list[dict[str, Any]] = []
    conn_error = None
    try:  # an unverified company has no connection to show yet; the page still starts the first authorization
        conns = (await api(request, "GET", "/api/auth/anaf/connections", params={"company_cif": c["cif"]}))["items"]
    except ApiError as e:
        conn_error = e
    delegations: list[dict[str, Any]] = []
    try:
        delegations = (await api(request, "GET", "/api/auth/anaf/delegations",
                                 params={"company_cif": c["cif"]}))["items"]
    except ApiError:
        pass
    live = [x for x in conns if x.get("state") not in ("revoked",)]
    if live and sess(request).get("just_authorized") == c["cif"]:
        sess(request).pop("just_authorized")
    return await page(request, "authorization.html", {"c": c, "connections": live, "delegations": delegations,
                                                      "conn_error": conn_error,
                                                      "settling": bool(conn_error and not conns
                                                                       and sess(request).get("just_authorized")
                                                                       == c["cif"]),
                                                      "is_owner": c.get("role") in ("owner", "admin")})


@router.post("/companies/" + CIF_PATH + "/authorization/start")
async def authorization_start(request: Request, cif: str) -> Response:
    require_signed_in(request)
    await form(request)
    started = await api(request, "POST", "/api/auth/anaf/authorizations", json={"company_cif": cif})
    return see_other(started["authorize_url"])


@router.post("/companies/" + CIF_PATH + "/authorization/{connection_id}/revoke")
async def authorization_revoke(request: Request, cif: str, connection_id: str) -> Response:
    require_signed_in(request)
    await form(request)
    await api(request, "POST", f"/api/auth/anaf/connections/{quote(connection_id)}/revoke")
    flash(request, "ok", tr(request)("auth.revoked"))
    return see_other(f"/companies/{cif}/authorization")


@router.post("/companies/" + CIF_PATH + "/delegations")
async def delegation_create(request: Request, cif: str) -> Response:
    require_signed_in(request)
    await form(request)
    c = await api(request, "GET", f"/api/portfolio/companies/{quote(cif)}")
    d = await api(request, "POST", "/api/auth/anaf/delegations", json={"company_cif": c["cif"]})
    who = (sess(request).get("user") or {}).get("name") or ""
    link = _delegation_page_url(request, d["url"], {"cif": c["cif"], "company": c.get("name"), "by": who})
    flash(request, "link", tr(request)("delegation.created"), link=link, expires_at=d.get("expires_at"))
    return see_other(f"/companies/{cif}/authorization#delegation")


@router.post("/companies/" + CIF_PATH + "/delegations/{delegation_id}/revoke")
async def delegation_revoke(request: Request, cif: str, delegation_id: str) -> Response:
    require_signed_in(request)
    await form(request)
    await api(request, "POST", f"/api/auth/anaf/delegations/{quote(delegation_id)}/revoke")
    flash(request, "ok", tr(request)("delegation.revoked"))
    return see_other(f"/companies/{cif}/authorization#delegation")


@router.get("/delegation")
async def delegation_landing(request: Request, token: str = "", ctx: str = "") -> Response:
    """The accountant's landing page: who asks, for which company, what happens next; then ANAF."""
    return render(request, "delegation.html", {"token": token, "ctx": ctx, "info": _read_ctx(request, ctx)})


@router.post("/delegation")
async def delegation_open(request: Request) -> Response:
    f = await form(request)
    token, ctx = str(f.get("token", "")), str(f.get("ctx", ""))
    name = str(f.get("name", "")).strip() or None
    try:
        if sess(request).signed_in:
            opened = await api(request, "POST", "/api/auth/anaf/delegations/open", json={"token": token, "name": name})
        else:
            opened = await public_api(request, "POST", "/api/auth/anaf/delegations/open",
                                      json={"token": token, "name": name})
    except ApiError as e:
        return render(request, "delegation.html", {"token": token, "ctx": ctx, "info": _read_ctx(request, ctx),
                                                   "error": e}, status=e.status)
    return see_other(opened["authorize_url"])


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


@router.get("/anaf/callback")
async def anaf_callback(request: Request) -> Response:
    """Where ANAF sends the browser back: auth completes the authorization through its public callback and the
    person sees the result; an API client (no text/html in Accept) gets auth's JSON answer unchanged."""
    r = await gw(request).raw("GET", "/api/auth/anaf/callback", auth=False, params=dict(request.query_params),
                              request_id=request.state.request_id)
    if not _wants_html(request):
        return Response(r.content, status_code=r.status_code, media_type=r.headers.get("content-type"))
    # Post/Redirect/Get: the code and state leave the address bar, and a reload does not replay the callback
    if 200 <= r.status_code < 300:
        conn = r.json()
        keep = ("id", "company_cif", "state", "authorizing_person", "certificate_serial", "services", "authorized_at",
                "refresh_expires_at", "must_act_by", "days_until_must_act", "via_delegation")
        sess(request).set(anaf_result={"ok": True, "conn": {k: conn.get(k) for k in keep}},
                          just_authorized=conn.get("company_cif"))
    else:
        from spvhub_web.gateway import error_of
        e = error_of(r)
        sess(request).set(anaf_result={"ok": False, "status": e.status, "code": e.code, "message": e.message,
                                       "details": {k: v for k, v in e.details.items() if k in ("cif", "anaf_error")}})
    return see_other("/anaf/result")


@router.get("/anaf/result")
async def anaf_result(request: Request, status: str = "", connection_id: str = "", code: str = "") -> Response:
    """The authorization's result: kept in the session by /anaf/callback, or told in the query when auth itself
    redirects here (its `callback_result_url` setting)."""
    kept = sess(request).get("anaf_result")
    if kept:
        sess(request).pop("anaf_result")
        if kept["ok"]:
            return render(request, "anaf_result.html", {"ok": True, "conn": kept["conn"],
                                                        "cif": kept["conn"].get("company_cif")})
        e = ApiError(kept["status"], kept["code"], kept["message"], kept.get("details"))
        return render(request, "anaf_result.html", {"ok": False, "error": e, "cif": e.details.get("cif")},
                      status=e.status)
    if status == "ok" and connection_id:
        conn = None
        if sess(request).signed_in:
            try:
                conn = await api(request, "GET", f"/api/auth/anaf/connections/{quote(connection_id)}")
            except ApiError:
                conn = None
        return render(request, "anaf_result.html",
                      {"ok": True, "conn": conn or {}, "cif": (conn or {}).get("company_cif")})
    e = ApiError(400, code or "anaf_authorize_error", code or "")
    return render(request, "anaf_result.html", {"ok": False, "error": e, "cif": None}, status=400)


# ---------------------------------------------------------------------------------------------- portfolio, invitations

@router.get("/companies/" + CIF_PATH + "/invitations")
async def firm_portfolio(request: Request, cif: str) -> Response:
    require_signed_in(request)
    c = await api(request, "GET", f"/api/portfolio/companies/{quote(cif)}")
    ctx: dict[str, Any] = {"c": c, "discovered": None, "status": None, "candidates": [], "invitations": []}
    for key, path, params in (
            ("discovered", f"/api/portfolio/companies/{quote(cif)}/discovered", None),
            ("status", f"/api/portfolio/companies/{quote(cif)}/portfolio-status", None),
            ("candidates", "/api/invitations/candidates", {"firm_cif": c["cif"]})):
        try:
            ctx[key] = await api(request, "GET", path, params=params)
        except ApiError as e:
            ctx[f"{key}_error"] = e
    try:
        ctx["invitations"] = await _firm_invitations(request, c["cif"])
    except ApiError as e:
        ctx["invitations_error"] = e
    cands = ctx["candidates"]
    ctx["candidate_rows"] = cands.get("items", cands.get("candidates", [])) if isinstance(cands, dict) else cands
    ctx["results"] = sess(request).get("invite_results")
    if ctx["results"] is not None:
        sess(request).pop("invite_results")
    return await page(request, "portfolio.html", ctx)


async def _firm_invitations(request: Request, firm_cif: str) -> list[dict[str, Any]]:
    """The firm's invitations, newest first."""
    return await _every_page(request, "/api/invitations", {"firm_cif": firm_cif})


async def _every_page(request: Request, path: str, params: dict[str, Any] | None = None,
                      pages: int = 20) -> list[dict[str, Any]]:
    """Every item of a paged list (500 a page, at most `pages` pages): the API answers a page at a time, a screen
    lists them all."""
    query: dict[str, Any] = {**(params or {}), "limit": 500}
    out: list[dict[str, Any]] = []
    for _ in range(pages):
        got = await api(request, "GET", path, params=query)
        out.extend(got.get("items", []))
        if not got.get("next_cursor"):
            break
        query["cursor"] = got["next_cursor"]
    return out


@router.post("/companies/" + CIF_PATH + "/discovery")
async def firm_discovery(request: Request, cif: str) -> Response:
    require_signed_in(request)
    await form(request)
    await api(request, "POST", f"/api/portfolio/companies/{quote(cif)}/discovery")
    flash(request, "ok", tr(request)("portfolio.discovery_started"))
    return see_other(f"/companies/{cif}/invitations")


@router.post("/companies/" + CIF_PATH + "/invitations")
async def firm_invite(request: Request, cif: str) -> Response:
    require_signed_in(request)
    f = await form(request)
    chosen = _strs(f.get("client"))
    items = []
    for client in chosen:
        items.append({"client_cif": client, "name": str(f.get(f"name_{client}", "")).strip(),
                      "email": str(f.get(f"email_{client}", "")).strip(),
                      "phone": str(f.get(f"phone_{client}", "")).strip(), "locale": tr(request).locale})
    t = tr(request)
    if not items:
        flash(request, "error", t("portfolio.none_chosen"))
        return see_other(f"/companies/{cif}/invitations")
    out = await api(request, "POST", "/api/invitations", json={"firm_cif": cif, "invitations": items}, ok=(207,))
    results = [{"client_cif": r.get("client_cif"), "ok": r.get("ok"),
                "shown": (r.get("invitation") or {}).get("client_tax_id"),
                "error": err_text(t, ApiError(400, r["error"]["code"], r["error"]["message"]))
                if r.get("error") else None} for r in out.get("results", [])]
    sess(request).set(invite_results={"created": out.get("created", 0), "failed": out.get("failed", 0),
                                      "items": results})
    return see_other(f"/companies/{cif}/invitations#results")


@router.post("/companies/" + CIF_PATH + "/invitations/{invitation_id}/{action}")
async def firm_invitation_action(request: Request, cif: str, invitation_id: str, action: str) -> Response:
    require_signed_in(request)
    _one_of(action, "resend", "revoke")
    await form(request)
    await api(request, "POST", f"/api/invitations/{quote(invitation_id)}/{action}",
              json={} if action == "resend" else None)
    flash(request, "ok", tr(request)(f"portfolio.{action}_done"))
    return see_other(f"/companies/{cif}/invitations#invitations")


@router.get("/join")
async def join(request: Request, invitation: str = "") -> Response:
    """The invitation link from the e-mail: who invites, for which company; sign up (pre-filled) or log in."""
    ctx: dict[str, Any] = {"invitation": invitation, "preview": None}
    try:
        ctx["preview"] = await public_api(request, "GET", "/api/invitations/preview", params={"token": invitation})
    except ApiError as e:
        ctx["error"] = e
        return render(request, "join.html", ctx, status=e.status)
    rep = ctx["preview"].get("representative") or {}
    ctx.update(name=rep.get("name", ""), email=rep.get("email", ""))
    return await page(request, "join.html", ctx) if sess(request).signed_in else render(request, "join.html", ctx)


@router.post("/join")
async def join_claim(request: Request) -> Response:
    require_signed_in(request)
    f = await form(request)
    return await _claim(request, str(f.get("invitation", "")))


async def _claim(request: Request, token: str) -> Response:
    t = tr(request)
    try:
        await api(request, "POST", "/api/invitations/claim", json={"token": token})
    except ApiError as e:
        flash(request, "error", err_text(t, e))
        return see_other("/inbox")
    flash(request, "ok", t("join.claimed"))
    return see_other("/inbox")


# ---------------------------------------------------------------------------------------------- the bell

@router.get("/inbox")
async def inbox(request: Request, unread_only: bool = False) -> Response:
    require_signed_in(request)
    box = await api(request, "GET", "/api/notifier/notifications", params={"limit": 100, "unread_only": unread_only})
    request.state.unread = box.get("unread")
    for n in box.get("items", []):
        n["path"] = _local_path(request, n.get("url") or "")
    return await page(request, "inbox.html", {"box": box, "unread_only": unread_only})


def _local_path(request: Request, url: str) -> str:
    """A notification link as a path on this site (the platform writes absolute URLs for e-mails)."""
    parts = urlsplit(url)
    path = parts.path or "/inbox"
    return path + (f"?{parts.query}" if parts.query else "")


@router.post("/inbox/read-all")
async def inbox_read_all(request: Request) -> Response:
    require_signed_in(request)
    await form(request)
    await api(request, "POST", "/api/notifier/notifications/read-all")
    return see_other("/inbox")


@router.post("/inbox/{notification_id}/{what}")
async def inbox_mark(request: Request, notification_id: str, what: str) -> Response:
    require_signed_in(request)
    if what in ("accept", "decline"):
        return await inbox_answer(request, notification_id, what)
    _one_of(what, "read", "unread")
    await form(request)
    await api(request, "POST", f"/api/notifier/notifications/{quote(notification_id)}/{what}")
    return see_other("/inbox")


async def inbox_answer(request: Request, notification_id: str, action: str) -> Response:
    require_signed_in(request)
    f = await form(request)
    t = tr(request)
    iid = str(f.get("invitation_id", ""))
    try:
        await api(request, "POST", f"/api/invitations/{quote(iid)}/{action}")
        flash(request, "ok", t(f"inbox.{action}ed"))
    except ApiError as e:
        cif = str(f.get("cif") or "")
        if e.code == "company_not_verified" and cif:
            # answering speaks for the company: prove control first (a certificate with SPV rights on it)
            flash(request, "error", t("inbox.verify_first"), href=f"/companies/{quote(cif)}/authorization",
                  href_text=t("auth.start"))
        else:
            flash(request, "error", err_text(t, e))
        return see_other("/inbox")
    try:
        await api(request, "POST", f"/api/notifier/notifications/{quote(notification_id)}/read")
    except ApiError:
        pass
    return see_other("/inbox")


@router.get("/preferences")
async def preferences(request: Request) -> Response:
    require_signed_in(request)
    prefs = await api(request, "GET", "/api/notifier/preferences")
    return await page(request, "preferences.html", {"prefs": prefs})


@router.post("/preferences")
async def preferences_save(request: Request) -> Response:
    require_signed_in(request)
    f = await form(request)
    prefs = await api(request, "GET", "/api/notifier/preferences")
    body = {"email": {k: f.get(f"email_{k}") == "on" for k in prefs.get("email", {})},
            "companies": [{"cif": c["cif"], "invoice_digest": f.get(f"digest_{c['cif']}") == "on"}
                          for c in prefs.get("companies", [])]}
    if f.get("locale") in LOCALES:
        # the language is the person's one setting (profile), followed by notifications and e-mails; the notifier
        # refuses it
        await api(request, "PATCH", "/api/auth/me", json={"locale": f["locale"]})
        sess(request).set(locale=f["locale"])
    await api(request, "PUT", "/api/notifier/preferences", json=body)
    flash(request, "ok", tr(request)("prefs.saved"))
    return see_other("/preferences")


# ---------------------------------------------------------------------------------------------- documents

FILTERS = ("direction", "partner", "number", "date_from", "date_to", "type")


@router.get("/invoices")
async def documents(request: Request) -> Response:
    require_signed_in(request)
    q = request.query_params
    return await _documents(request, q.get("cif") or "", dict(q))


@router.get("/companies/" + CIF_PATH + "/invoices")
async def company_documents(request: Request, cif: str) -> Response:
    require_signed_in(request)
    return await _documents(request, cif, dict(request.query_params))


@router.get("/companies/" + CIF_PATH + "/invoices/errors")
async def company_document_errors(request: Request, cif: str) -> Response:
    require_signed_in(request)
    return await _documents(request, cif, {**request.query_params, "type": "error_report"})


async def _documents(request: Request, cif: str, q: dict[str, str]) -> Response:
    settings = request.app.state.settings
    comps = [c for c in await _companies(request) if c.get("accessible", True)]
    if not cif and comps:
        cif = comps[0]["cif"]
    filters = {k: q[k] for k in FILTERS if q.get(k)}
    try:
        size = int(q.get("page_size") or settings.page_sizes[0])
    except ValueError:
        size = settings.page_sizes[0]
    size = size if size in settings.page_sizes else settings.page_sizes[0]
    params: dict[str, Any] = {**filters, "limit": size}
    if cif:
        params["cif"] = cif
    if q.get("cursor"):
        params["cursor"] = q["cursor"]
    ctx: dict[str, Any] = {"companies": comps, "cif": cif, "filters": filters, "page_size": size,
                           "page_sizes": settings.page_sizes, "items": [], "next_cursor": None, "sync": None}
    try:
        got = await api(request, "GET", "/api/efactura/invoices", params=params)
        ctx["items"], ctx["next_cursor"] = got.get("items", []), got.get("next_cursor")
    except ApiError as e:
        ctx["list_error"] = e
    if cif:
        try:
            ctx["sync"] = await api(request, "GET", f"/api/efactura/companies/{quote(cif)}/sync")
        except ApiError as e:
            ctx["sync_error"] = e
    keep = {**filters, "page_size": size, **({"cif": cif} if cif else {})}
    ctx["export_qs"] = urlencode({**filters, **({"cif": cif} if cif else {})})
    ctx["next_qs"] = urlencode({**keep, "cursor": ctx["next_cursor"]}) if ctx["next_cursor"] else ""
    return await page(request, "documents.html", ctx)


@router.post("/companies/" + CIF_PATH + "/sync")
async def sync_now(request: Request, cif: str) -> Response:
    require_signed_in(request)
    await form(request)
    t = tr(request)
    try:
        await api(request, "POST", f"/api/efactura/companies/{quote(cif)}/sync")
        flash(request, "ok", t("docs.sync_started"))
    except ApiError as e:
        flash(request, "error", err_text(t, e))
    return see_other(f"/invoices?cif={quote(cif)}")


async def _stream(request: Request, path: str, params: dict[str, Any] | None = None) -> Response:
    """A download passed through from the gateway with the person's token (bytes are not buffered)."""
    g, s = gw(request), sess(request)
    token = s.get("access_token")
    if not token:
        raise NotSignedIn()
    req = g.http.build_request("GET", path, params=params, headers={"authorization": f"Bearer {token}"})
    r = await g.http.send(req, stream=True)
    if r.status_code == 401:
        await r.aclose()
        await g.raw("GET", "/api/auth/me", s)  # refreshes the session's token, or signs out
        token = s.get("access_token")
        req = g.http.build_request("GET", path, params=params, headers={"authorization": f"Bearer {token}"})
        r = await g.http.send(req, stream=True)
    if r.status_code != 200:
        await r.aread()
        await r.aclose()
        from spvhub_web.gateway import error_of
        raise error_of(r)
    headers = {k: v for k, v in r.headers.items() if k.lower() in ("content-type", "content-disposition",
                                                                   "content-length", "etag")}

    async def body():  # type: ignore[no-untyped-def]
        try:
            async for chunk in r.aiter_raw():
                yield chunk
        finally:
            await r.aclose()
    return StreamingResponse(body(), headers=headers)


@router.get("/invoices/{invoice_id:int}/{kind}")
async def invoice_file(request: Request, invoice_id: int, kind: str) -> Response:
    require_signed_in(request)
    _one_of(kind, "xml", "pdf", "zip")
    return await _stream(request, f"/api/efactura/invoices/{invoice_id}/{kind}")


@router.get("/invoices-export.zip")
async def invoices_export(request: Request) -> Response:
    require_signed_in(request)
    q = request.query_params
    params = {k: q[k] for k in (*FILTERS, "cif") if q.get(k)}
    params["include"] = "xml,pdf,zip"
    return await _stream(request, "/api/efactura/invoices-export.zip", params)


# ---------------------------------------------------------------------------------------------- e-Transport

@router.get("/transports")
async def transports(request: Request) -> Response:
    require_signed_in(request)
    return await _transports(request, request.query_params.get("company") or "")


@router.get("/companies/" + CIF_PATH + "/transports")
async def company_transports(request: Request, cif: str) -> Response:
    require_signed_in(request)
    return await _transports(request, cif)


async def _transports(request: Request, cif: str) -> Response:
    q = request.query_params
    filters = {k: q[k] for k in ("state", "vehicle", "date_from", "date_to") if q.get(k)}
    params: dict[str, Any] = {**filters, "limit": 50}
    if cif:
        params["company"] = cif
    if q.get("cursor"):
        params["cursor"] = q["cursor"]
    ctx: dict[str, Any] = {"cif": cif, "q": dict(q), "data": {}, "carriers": [], "next_qs": ""}
    try:
        ctx["data"] = await api(request, "GET", "/api/etransport/transports", params=params)
    except ApiError as e:
        ctx["list_error"] = e
    try:
        ctx["carriers"] = (await api(request, "GET", "/api/etransport/companies")).get("items", [])
        names = {c["cif"]: c.get("name") for c in await _companies(request)}
        for c in ctx["carriers"]:
            c["name"] = c.get("name") or names.get(c.get("cif"))
    except ApiError:
        pass
    nxt = ctx["data"].get("next_cursor")
    ctx["next_qs"] = urlencode({**filters, **({"company": cif} if cif else {}), "cursor": nxt}) if nxt else ""
    return await page(request, "transports.html", ctx)


@router.post("/companies/" + CIF_PATH + "/transports/poll")
async def transports_poll(request: Request, cif: str) -> Response:
    require_signed_in(request)
    await form(request)
    t = tr(request)
    try:
        await api(request, "POST", f"/api/etransport/companies/{quote(cif)}/poll", params={"lista": "true"})
        flash(request, "ok", t("tr.polled"))
    except ApiError as e:
        flash(request, "error", err_text(t, e))
    return see_other(f"/companies/{quote(cif)}/transports")


# ---------------------------------------------------------------------------------------------- sending invoices

@router.get("/companies/" + CIF_PATH + "/submissions")
async def submissions(request: Request, cif: str) -> Response:
    require_signed_in(request)
    c = await api(request, "GET", f"/api/portfolio/companies/{quote(cif)}")
    ctx: dict[str, Any] = {"c": c, "items": [], "idempotency_key": str(uuid.uuid4())}
    try:
        got = await api(request, "GET", f"/api/efactura/companies/{quote(cif)}/submissions", params={"limit": 50})
        ctx["items"] = got.get("items", got) if isinstance(got, dict) else got
    except ApiError as e:
        ctx["list_error"] = e
    return await page(request, "submissions.html", ctx)


@router.post("/companies/" + CIF_PATH + "/submissions")
async def submission_upload(request: Request, cif: str) -> Response:
    require_signed_in(request)
    f = await form(request)
    upload = f.get("xml")
    t = tr(request)
    data = await upload.read() if hasattr(upload, "read") else b""
    if not data:
        flash(request, "error", t("send.no_file"))
        return see_other(f"/companies/{cif}/submissions")
    files = {"file": (getattr(upload, "filename", None) or "factura.xml", data, "application/xml")}
    fields = {k: "true" for k in ("extern", "autofactura", "validate_first") if f.get(k) == "on"}
    # one key per form rendering: pressing "send" twice files the invoice once
    key = str(f.get("idempotency_key") or uuid.uuid4())
    try:
        sub = await api(request, "POST", f"/api/efactura/companies/{quote(cif)}/submissions", files=files,
                        data=fields, headers={"Idempotency-Key": key})
    except ApiError as e:
        flash(request, "error", err_text(t, e))
        return see_other(f"/companies/{cif}/submissions")
    return see_other(f"/companies/{cif}/submissions/{sub['id']}")


@router.get("/companies/" + CIF_PATH + "/submissions/{submission_id}")
async def submission(request: Request, cif: str, submission_id: str) -> Response:
    require_signed_in(request)
    sub = await api(request, "GET", f"/api/efactura/submissions/{quote(submission_id)}")
    return await page(request, "submission.html", {"cif": cif, "sub": sub})

