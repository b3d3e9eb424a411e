"""logincert OAuth2 (authorize page, token, revoke), RS512 JWTs and the Bearer check of every API."""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from .responses import json_response
from .scenario import Application, Certificate
from .signing import decode_jwt, encode_jwt
from .state import DAY, EmulatorState

ACCESS_TTL = 90 * 86400
REFRESH_TTL = 365 * 86400
CODE_TTL = 60

router = APIRouter()


def st(request: Request) -> EmulatorState:
    return request.app.state.emulator


# -- tokens ----------------------------------------------------------------------------------------


def _roles(app: Application) -> list[str]:
    roles = ["HELLO"]
    if "E-Factura" in app.services:
        roles.append("EFACTURA")
    if "E-Transport" in app.services:
        roles.append("ETRANSPORT")
    if "E-Factura" in app.services:
        roles.append("SRV_EFACTURA")
    return roles


def _claims(app: Application, serial: str, iat: int, ttl: int) -> dict[str, Any]:
    role = ",".join(_roles(app))
    claims: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": "clientappid info issuer role serial",
        "scope_data": [
            {"id": "clientappid", "value": app.client_id},
            {"id": "info", "value": ""},
            {"id": "issuer", "value": "Anaf"},
            {"id": "role", "value": role},
            {"id": "serial", "value": serial},
        ],
        "iss": "https://logincert.anaf.ro",
        "clientappid": app.client_id,
    }
    if "E-Factura" in app.services:
        claims["efactura"] = "EFACTURA,SRV_EFACTURA"
    if "E-Transport" in app.services:
        claims["etransport"] = "ETRANSPORT"
    claims.update({"hello": "HELLO", "issuer": "Anaf", "role": role, "serial": serial,
                   "iat": iat, "nbf": iat, "exp": iat + ttl})
    return claims


def issue_tokens(state: EmulatorState, app: Application, serial: str, auth_time: int) -> dict[str, Any]:
    """A token response: access JWT (90 days) and refresh JWT (365 days, carries jti + auth_time)."""
    iat = int(state.clock.timestamp())
    access = encode_jwt(_claims(app, serial, iat, ACCESS_TTL))
    refresh_claims = _claims(app, serial, iat, REFRESH_TTL)
    refresh_claims["jti"] = uuid.uuid4().hex
    refresh_claims["auth_time"] = auth_time
    refresh = encode_jwt(refresh_claims)
    return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer", "expires_in": ACCESS_TTL}


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    return json_response({"error": error, "error_description": description}, status=status)


def claims_of(state: EmulatorState, token: str) -> dict[str, Any] | None:
    cache = state.token_cache
    if token in cache:
        return cache[token]
    claims = decode_jwt(token)
    if len(cache) > 50_000:
        cache.clear()
    cache[token] = claims
    return claims


# -- the Bearer check shared by every API ----------------------------------------------------------


@dataclass
class Principal:
    token: str
    claims: dict[str, Any]
    cert: Certificate
    serial: str
    rights: list[str]

    @property
    def serial_plain(self) -> str:
        return self.serial.replace(":", "").upper()


def _invalid_token(state: EmulatorState, description: str) -> Response:
    status = state.switches.invalid_token_status
    state.counters.rejected[str(status)] += 1
    headers = {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'}
    return json_response({"error": "invalid_token", "error_description": description}, status=status, headers=headers)


def _forbidden(state: EmulatorState, description: str) -> Response:
    state.counters.rejected["403"] += 1
    return json_response({"error": "access_denied", "error_description": description}, status=403)


def authenticate(request: Request, service: str | None, rate_limited: bool = True) -> Principal | Response:
    """Validate the Bearer token on the emulator clock; a Response means the call is refused."""
    state = st(request)
    header = request.headers.get("authorization", "")
    if header[:7].lower() != "bearer ":
        return _invalid_token(state, "missing bearer token")
    token = header[7:].strip()
    claims = claims_of(state, token)
    if claims is None or "jti" in claims:
        return _invalid_token(state, "malformed token")
    now = state.clock.timestamp()
    if not (claims.get("nbf", 0) <= now + 5 and now < claims.get("exp", 0)):
        return _invalid_token(state, "token expired")
    if token in state.revoked_access:
        return _invalid_token(state, "token revoked")
    if service is not None and not claims.get(service):
        return _invalid_token(state, f"token not valid for {service}")
    if claims.get("clientappid") not in state.apps:
        return _invalid_token(state, "unknown application")
    cert, current = state.cert_by_serial(str(claims.get("serial", "")))
    if cert is None:
        return _invalid_token(state, "unknown certificate")
    if cert.revoked:
        return _forbidden(state, "certificate revoked")
    rights = cert.rights
    if not current:
        mode = state.switches.old_serial_tokens
        if mode == "refuse":
            return _forbidden(state, "certificate serial replaced by a renewed certificate")
        if mode == "no_rights":
            rights = []
    if rate_limited and state.switches.rate_limit_per_minute > 0:
        allowed, retry = state.minute.take("t:" + token, state.switches.rate_limit_per_minute)
        if not allowed:
            state.counters.rejected["429"] += 1
            return json_response({"error": "Too Many Requests"}, status=429, headers={"Retry-After": str(retry)})
    return Principal(token, claims, cert, str(claims["serial"]), rights)


# -- authorize -------------------------------------------------------------------------------------

_PAGE = """<!DOCTYPE html>
<html lang="ro"><head><meta charset="utf-8"><title>ANAF - Selectati certificatul</title></head>
<body>
<h1>Autentificare cu certificat digital</h1>
<p>Aplicatia <b>{app}</b> solicita acces la serviciile: {services}.</p>
<form method="post" action="{root}/anaf-oauth2/v1/authorize" id="certificate-form">
{hidden}
<fieldset><legend>Select a Certificate</legend>
{options}
</fieldset>
<label>PIN <input type="password" name="pin" autocomplete="off"></label>
<button type="submit" name="action" value="login">OK</button>
<button type="submit" name="action" value="cancel">Cancel</button>
</form>
</body></html>
"""

_LOGOUT_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Pagina logout</title></head>
<body><h2>Certificatul nu a fost prezentat</h2>
<p>Sesiunea a fost inchisa. Verificati ca certificatul digital este conectat si selectat.</p></body></html>
"""


def _redirect(redirect_uri: str, params: dict[str, str]) -> RedirectResponse:
    sep = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{sep}{urlencode(params)}", status_code=302)


def _issue_code(state: EmulatorState, app: Application, redirect_uri: str, cert: Certificate, oauth_state: str | None) -> Response:
    code = secrets.token_hex(32)
    state.codes[code] = {
        "client_id": app.client_id,
        "redirect_uri": redirect_uri,
        "cert": cert.id,
        "serial": cert.serial,
        "created": state.clock.timestamp(),
    }
    state.counters.oauth["codes_issued"] += 1
    params = {"code": code}
    if oauth_state:
        params["state"] = oauth_state
    return _redirect(redirect_uri, params)


def _check_authorize(state: EmulatorState, params: Any) -> tuple[Application, str] | Response:
    app = state.apps.get(params.get("client_id", ""))
    if app is None:
        return _oauth_error("invalid_request", "Unknown client_id")
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in app.redirect_uris:
        return _oauth_error("invalid_request", "redirect_uri does not match a registered callback URL")
    if params.get("response_type") != "code":
        extra = {"error": "unsupported_response_type"}
        if params.get("state"):
            extra["state"] = params["state"]
        return _redirect(redirect_uri, extra)
    return app, redirect_uri


@router.get("/anaf-oauth2/v1/authorize")
async def authorize_page(request: Request) -> Response:
    state = st(request)
    q = request.query_params
    checked = _check_authorize(state, q)
    if isinstance(checked, Response):
        return checked
    app, redirect_uri = checked
    state.counters.oauth["authorize_pages"] += 1
    auto = q.get("emulator_certificate") or state.switches.auto_select_certificate
    if auto:
        cert = state.certs.get(auto)
        if cert is None or cert.revoked:
            return _access_denied(redirect_uri, q.get("state"))
        return _issue_code(state, app, redirect_uri, cert, q.get("state"))
    hidden = "\n".join(
        f'<input type="hidden" name="{name}" value="{escape(q.get(name, ""))}">'
        for name in ("response_type", "client_id", "redirect_uri", "token_content_type", "state", "scope")
    )
    options = "\n".join(
        f'<label><input type="radio" name="certificate" value="{escape(c.id)}"> {escape(c.name)} '
        f"({escape(c.issuer)}, serial {escape(c.serial)})</label><br>"
        for c in state.certs.values()
    )
    services = ", ".join(sorted(app.services))
    # root_path: the host prefix when the emulator serves each ANAF host under its own prefix (hosts.py)
    return HTMLResponse(_PAGE.format(app=escape(app.name or app.client_id), services=services, hidden=hidden,
                                     options=options, root=escape(request.scope.get("root_path", ""))))


def _access_denied(redirect_uri: str, oauth_state: str | None) -> Response:
    params = {"error": "access_denied"}
    if oauth_state:
        params["state"] = oauth_state
    return _redirect(redirect_uri, params)


@router.post("/anaf-oauth2/v1/authorize")
async def authorize_submit(request: Request) -> Response:
    state = st(request)
    form = await request.form()
    params = {k: str(v) for k, v in form.items()}
    checked = _check_authorize(state, params)
    if isinstance(checked, Response):
        return checked
    app, redirect_uri = checked
    oauth_state = params.get("state") or None
    if params.get("action") == "cancel":
        return _access_denied(redirect_uri, oauth_state)
    cert = state.certs.get(params.get("certificate", ""))
    if cert is None:
        if state.switches.no_certificate_page:
            return HTMLResponse(_LOGOUT_PAGE)
        return _access_denied(redirect_uri, oauth_state)
    if cert.revoked or params.get("pin", "") != cert.pin:
        return _access_denied(redirect_uri, oauth_state)
    return _issue_code(state, app, redirect_uri, cert, oauth_state)


# -- token -----------------------------------------------------------------------------------------


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip()).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        client_id, sep, secret = decoded.partition(":")
        return (client_id, secret) if sep else None
    if form.get("client_id") and form.get("client_secret"):
        return form["client_id"], form["client_secret"]
    return None


@router.post("/anaf-oauth2/v1/token")
async def token(request: Request) -> Response:
    state = st(request)
    form = {k: str(v) for k, v in (await request.form()).items()}
    creds = _client_credentials(request, form)
    if creds is None:
        return _oauth_error("invalid_client", "Client authentication failed")
    app = state.apps.get(creds[0])
    if app is None or not secrets.compare_digest(app.client_secret, creds[1]):
        return _oauth_error("invalid_client", "Client authentication failed")
    grant = form.get("grant_type")
    with state.lock:
        if grant == "authorization_code":
            return _grant_code(state, app, form)
        if grant == "refresh_token":
            return _grant_refresh(state, app, form)
    return _oauth_error("invalid_request", "Missing or unsupported grant_type")


def _grant_code(state: EmulatorState, app: Application, form: dict[str, str]) -> Response:
    code = form.get("code")
    if not code or not form.get("redirect_uri"):
        return _oauth_error("invalid_request", "Missing parameter: code and redirect_uri are required")
    record = state.codes.pop(code, None)  # single use, even when the exchange then fails
    if record is None:
        return _oauth_error("invalid_grant", "Invalid authorization code")
    if state.clock.timestamp() - record["created"] > CODE_TTL:
        return _oauth_error("invalid_grant", "Authorization code expired")
    if record["client_id"] != app.client_id or record["redirect_uri"] != form["redirect_uri"]:
        return _oauth_error("invalid_grant", "Authorization code was issued to another client or redirect_uri")
    cert = state.certs.get(record["cert"])
    if cert is None or cert.revoked:
        return _oauth_error("invalid_grant", "Certificate no longer valid")
    state.counters.oauth["authorization_code"] += 1
    return json_response(issue_tokens(state, app, record["serial"], int(state.clock.timestamp())))


def _grant_refresh(state: EmulatorState, app: Application, form: dict[str, str]) -> Response:
    refresh = form.get("refresh_token")
    if not refresh:
        return _oauth_error("invalid_request", "Missing parameter: refresh_token")
    claims = claims_of(state, refresh)
    if claims is None or "jti" not in claims:
        return _oauth_error("invalid_grant", "Invalid refresh token")
    now = state.clock.timestamp()
    if now >= claims.get("exp", 0):
        return _oauth_error("invalid_grant", "Refresh Token status is expired")
    if claims["jti"] in state.revoked_jtis:
        return _oauth_error("invalid_grant", "Refresh token was already used or revoked")
    if claims.get("clientappid") != app.client_id:
        return _oauth_error("invalid_grant", "Refresh token was issued to another client")
    horizon = state.switches.family_horizon_days
    auth_time = int(claims.get("auth_time", claims.get("iat", 0)))
    if horizon and now >= auth_time + horizon * DAY:
        return _oauth_error("invalid_grant", "Refresh token family expired; a new certificate login is required")
    cert, current = state.cert_by_serial(str(claims.get("serial", "")))
    if cert is None or cert.revoked:
        return _oauth_error("invalid_grant", "Certificate no longer valid")
    if not current and state.switches.old_serial_tokens != "accept":
        return _oauth_error("invalid_grant", "Certificate serial replaced by a renewed certificate")
    if not state.switches.refresh_keeps_old:
        state.revoked_jtis.add(claims["jti"])
    state.counters.oauth["refresh_token"] += 1
    return json_response(issue_tokens(state, app, str(claims["serial"]), auth_time))


# -- revoke and hello ------------------------------------------------------------------------------


@router.post("/anaf-oauth2/v1/revoke")
async def revoke(request: Request) -> Response:
    state = st(request)
    if state.switches.revoke_mode == "my_policy":
        return RedirectResponse("/my.policy", status_code=302)
    form = {k: str(v) for k, v in (await request.form()).items()}
    value = form.get("token") or form.get("access_token") or form.get("refresh_token") or ""
    claims = claims_of(state, value)
    if claims is not None:
        if "jti" in claims:
            state.revoked_jtis.add(claims["jti"])
        else:
            state.revoked_access.add(value)
    return Response(status_code=200)


@router.get("/TestOauth/jaxrs/hello")
async def hello(request: Request) -> Response:
    principal = authenticate(request, None)
    if isinstance(principal, Response):
        return principal
    name = request.query_params.get("name", "")
    lines = [f'Hello, "{name}"']
    headers = dict(request.headers)
    headers["issuer"] = "Anaf"
    headers["serial_certificate"] = principal.serial
    headers["session-id"] = uuid.uuid5(uuid.NAMESPACE_URL, principal.token).hex
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return PlainTextResponse("\n".join(lines) + "\n")
