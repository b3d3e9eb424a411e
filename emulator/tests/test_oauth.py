"""OAuth checklist (§10): authorize page, codes, token endpoint, JWT claims, rotation, horizon, renewal."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
from conftest import REDIRECT, A


def _segment(token: str, i: int) -> dict:
    part = token.split(".")[i]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


async def _authorize_form(emu, cert: str | None, pin: str | None, action: str = "login", state: str = "xyz"):
    app = emu.both_app
    q = {"response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT,
         "token_content_type": "jwt", "state": state}
    page = await emu.client.get("/anaf-oauth2/v1/authorize", params=q)
    assert page.status_code == 200
    assert '<form method="post" action="/anaf-oauth2/v1/authorize"' in page.text
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    assert hidden["client_id"] == app.client_id
    form = {**hidden, "action": action}
    if cert:
        form["certificate"] = cert
    if pin is not None:
        form["pin"] = pin
    return await emu.client.post("/anaf-oauth2/v1/authorize", data=form)


async def _code(emu, cert: str = "acc", pin: str = "1111") -> str:
    r = await _authorize_form(emu, cert, pin)
    assert r.status_code == 302
    return parse_qs(urlparse(r.headers["location"]).query)["code"][0]


async def _exchange(emu, code: str, basic: bool = True, redirect: str = REDIRECT):
    app = emu.both_app
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect, "token_content_type": "jwt"}
    if basic:
        return await emu.client.post("/anaf-oauth2/v1/token", data=data, auth=(app.client_id, app.client_secret))
    data.update(client_id=app.client_id, client_secret=app.client_secret)
    return await emu.client.post("/anaf-oauth2/v1/token", data=data)


async def test_browser_flow_redirects_with_64_hex_code_and_state(emu):
    r = await _authorize_form(emu, "acc", "1111")
    assert r.status_code == 302
    loc = urlparse(r.headers["location"])
    assert f"{loc.scheme}://{loc.netloc}{loc.path}" == REDIRECT
    q = parse_qs(loc.query)
    assert re.fullmatch(r"[0-9a-f]{64}", q["code"][0])
    assert q["state"] == ["xyz"]


@pytest.mark.parametrize(
    ("cert", "pin", "action", "expect"),
    [
        ("acc", "1111", "cancel", "access_denied"),
        ("acc", "9999", "login", "access_denied"),
        (None, None, "login", "page"),
    ],
)
async def test_authorize_failures(emu, cert, pin, action, expect):
    r = await _authorize_form(emu, cert, pin, action)
    if expect == "page":
        assert r.status_code == 200
        assert "Certificatul nu a fost prezentat" in r.text and "<title>Pagina logout</title>" in r.text
    else:
        assert r.status_code == 302
        assert parse_qs(urlparse(r.headers["location"]).query) == {"error": ["access_denied"], "state": ["xyz"]}


async def test_no_certificate_redirects_when_page_switch_off(emu):
    emu.state.switches.update({"no_certificate_page": False})
    r = await _authorize_form(emu, None, None)
    assert r.status_code == 302 and "error=access_denied" in r.headers["location"]


async def test_authorize_validates_client_redirect_and_response_type(emu):
    app = emu.both_app
    base = {"response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT}
    r = await emu.client.get("/anaf-oauth2/v1/authorize", params={**base, "client_id": "0" * 48})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await emu.client.get("/anaf-oauth2/v1/authorize", params={**base, "redirect_uri": "https://evil.example/cb"})
    assert r.status_code == 400
    r = await emu.client.get("/anaf-oauth2/v1/authorize", params={**base, "response_type": "token"})
    assert r.status_code == 302 and "error=unsupported_response_type" in r.headers["location"]


async def test_auto_select_by_query_and_switch(emu):
    app = emu.both_app
    q = {"response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT, "emulator_certificate": "acc"}
    r = await emu.client.get("/anaf-oauth2/v1/authorize", params=q)
    assert r.status_code == 302 and "code=" in r.headers["location"]
    emu.state.switches.update({"auto_select_certificate": "carrier"})
    del q["emulator_certificate"]
    r = await emu.client.get("/anaf-oauth2/v1/authorize", params=q)
    code = parse_qs(urlparse(r.headers["location"]).query)["code"][0]
    tokens = (await _exchange(emu, code)).json()
    assert _segment(tokens["access_token"], 1)["serial"] == emu.state.certs["carrier"].serial


async def test_token_response_and_jwt_claims(emu):
    r = await _exchange(emu, await _code(emu))
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 7776000
    header = _segment(body["access_token"], 0)
    assert header == {"alg": "RS512", "kid": "anaf_2023_2024"}
    claims = _segment(body["access_token"], 1)
    now = int(emu.state.clock.timestamp())
    assert claims["iat"] == claims["nbf"] == now
    assert claims["exp"] - claims["iat"] == 7776000
    assert claims["iss"] == "https://logincert.anaf.ro"
    assert claims["clientappid"] == emu.both_app.client_id
    assert claims["role"] == "HELLO,EFACTURA,ETRANSPORT,SRV_EFACTURA"
    assert claims["efactura"] == "EFACTURA,SRV_EFACTURA" and claims["etransport"] == "ETRANSPORT"
    assert claims["serial"] == emu.state.certs["acc"].serial
    assert claims["scope"] == "clientappid info issuer role serial"
    assert {d["id"] for d in claims["scope_data"]} == {"clientappid", "info", "issuer", "role", "serial"}
    refresh = _segment(body["refresh_token"], 1)
    assert refresh["exp"] - refresh["iat"] == 365 * 86400
    # the published JWKS verifies the token
    jwks = (await emu.client.get("/__emulator/jwks.json")).json()
    key = jwt.PyJWK(jwks["keys"][0]).key
    decoded = jwt.decode(body["access_token"], key, algorithms=["RS512"], options={"verify_exp": False})
    assert decoded["serial"] == claims["serial"]


async def test_form_body_client_auth(emu):
    r = await _exchange(emu, await _code(emu), basic=False)
    assert r.status_code == 200 and "access_token" in r.json()


async def test_code_single_use_and_60_seconds(emu):
    code = await _code(emu)
    assert (await _exchange(emu, code)).status_code == 200
    r = await _exchange(emu, code)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    code = await _code(emu)
    emu.advance(61)
    r = await _exchange(emu, code)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("data", "auth", "error"),
    [
        ({"grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT}, ("bad", "bad"), "invalid_client"),
        ({"grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT}, None, "invalid_client"),
        ({"code": "x"}, "ok", "invalid_request"),
        ({"grant_type": "authorization_code"}, "ok", "invalid_request"),
        ({"grant_type": "refresh_token"}, "ok", "invalid_request"),
        ({"grant_type": "authorization_code", "code": "0" * 64, "redirect_uri": REDIRECT}, "ok", "invalid_grant"),
        ({"grant_type": "refresh_token", "refresh_token": "garbage"}, "ok", "invalid_grant"),
    ],
)
async def test_token_errors(emu, data, auth, error):
    if auth == "ok":
        auth = (emu.both_app.client_id, emu.both_app.client_secret)
    r = await emu.client.post("/anaf-oauth2/v1/token", data=data, auth=auth)
    assert r.status_code == 400
    assert r.json()["error"] == error and "error_description" in r.json()


async def _refresh(emu, refresh_token: str):
    app = emu.both_app
    return await emu.client.post("/anaf-oauth2/v1/token", data={"grant_type": "refresh_token",
                                 "refresh_token": refresh_token}, auth=(app.client_id, app.client_secret))


async def test_refresh_rotates_and_old_refresh_dies(emu):
    first = (await _exchange(emu, await _code(emu))).json()
    emu.advance(10)
    second = await _refresh(emu, first["refresh_token"])
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]
    again = await _refresh(emu, first["refresh_token"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert (await _refresh(emu, second.json()["refresh_token"])).status_code == 200
    assert emu.state.counters.oauth["refresh_token"] == 2


async def test_refresh_keeps_old_when_switched(emu):
    emu.state.switches.update({"refresh_keeps_old": True})
    first = (await _exchange(emu, await _code(emu))).json()
    assert (await _refresh(emu, first["refresh_token"])).status_code == 200
    assert (await _refresh(emu, first["refresh_token"])).status_code == 200


async def test_expired_refresh_and_family_horizon(emu):
    tokens = (await _exchange(emu, await _code(emu))).json()
    emu.advance(366 * 86400)
    r = await _refresh(emu, tokens["refresh_token"])
    assert r.status_code == 400 and r.json() == {"error": "invalid_grant",
                                                 "error_description": "Refresh Token status is expired"}
    # refreshing every 300 days keeps going until the 730-day horizon from the certificate login
    tokens = (await _exchange(emu, await _code(emu))).json()
    for _ in range(2):
        emu.advance(300 * 86400)
        r = await _refresh(emu, tokens["refresh_token"])
        assert r.status_code == 200
        tokens = r.json()
    emu.advance(140 * 86400)
    r = await _refresh(emu, tokens["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    emu.state.switches.update({"family_horizon_days": None})
    assert (await _refresh(emu, tokens["refresh_token"])).status_code == 200


@pytest.mark.parametrize("status", [401, 403])
async def test_expired_or_garbage_access_token(emu, status):
    emu.state.switches.update({"invalid_token_status": status})
    headers = await emu.bearer()
    url = "/prod/FCTEL/rest/listaMesajeFactura"
    assert (await emu.client.get(url, params={"zile": 1, "cif": A}, headers=headers)).status_code == 200
    emu.advance(90 * 86400 + 1)
    r = await emu.client.get(url, params={"zile": 1, "cif": A}, headers=headers)
    assert r.status_code == status and r.json()["error"] == "invalid_token"
    r = await emu.client.get(url, params={"zile": 1, "cif": A}, headers={"Authorization": "Bearer abc.def.ghi"})
    assert r.status_code == status
    r = await emu.client.get(url, params={"zile": 1, "cif": A})
    assert r.status_code == status


async def test_token_without_service_is_rejected_on_that_service(emu):
    headers = await emu.bearer(app=emu.efactura_app)
    r = await emu.client.get("/test/ETRANSPORT/ws/v1/info", params={"cui_op": A}, headers=headers)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    r = await emu.client.get("/test/FCTEL/rest/listaMesajeFactura", params={"zile": 1, "cif": A}, headers=headers)
    assert r.status_code == 200


async def test_revoke_mimics_f5_wall_or_revokes(emu):
    r = await emu.client.post("/anaf-oauth2/v1/revoke", data={"token": "x"})
    assert r.status_code == 302 and r.headers["location"] == "/my.policy"
    emu.state.switches.update({"revoke_mode": "ok"})
    tokens = await emu.tokens()
    r = await emu.client.post("/anaf-oauth2/v1/revoke", data={"token": tokens["access_token"]})
    assert r.status_code == 200
    r = await emu.client.get("/TestOauth/jaxrs/hello", params={"name": "x"},
                             headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert r.status_code == 401


async def test_hello(emu):
    r = await emu.client.get("/TestOauth/jaxrs/hello", params={"name": "spvhub"}, headers=await emu.bearer())
    assert r.status_code == 200
    assert r.text.startswith('Hello, "spvhub"\n')
    assert "authorization: Bearer " in r.text and "serial_certificate: " in r.text


@pytest.mark.parametrize(("mode", "status", "body"), [
    ("refuse", 403, None),
    ("no_rights", 200, {"eroare": "Nu exista niciun CIF pentru care sa aveti drept in SPV", "titlu": "Lista Mesaje"}),
    ("accept", 200, None),
])
async def test_certificate_renewal(emu, mode, status, body):
    emu.state.switches.update({"old_serial_tokens": mode})
    old = await emu.tokens()
    r = await emu.client.post("/__admin/certificates/acc/renew")
    assert r.status_code == 200 and r.json()["old_serial"] != r.json()["serial"]
    r = await emu.client.get("/prod/FCTEL/rest/listaMesajeFactura", params={"zile": 5, "cif": A},
                             headers={"Authorization": "Bearer " + old["access_token"]})
    assert r.status_code == status
    if body:
        assert r.json() == body
    if mode == "accept":
        assert "mesaje" in r.json()
    refreshed = await _refresh(emu, old["refresh_token"])
    assert refreshed.status_code == (200 if mode == "accept" else 400)
    # a new login binds the new serial and works
    new = await emu.tokens()
    r = await emu.client.get("/prod/FCTEL/rest/listaMesajeFactura", params={"zile": 5, "cif": A},
                             headers={"Authorization": "Bearer " + new["access_token"]})
    assert r.status_code == 200 and "mesaje" in r.json()


async def test_revoked_certificate(emu):
    headers = await emu.bearer()
    await emu.client.post("/__admin/certificates/acc/revoke")
    r = await emu.client.get("/prod/FCTEL/rest/listaMesajeFactura", params={"zile": 5, "cif": A}, headers=headers)
    assert r.status_code == 403
    r = await _authorize_form(emu, "acc", "1111")
    assert r.status_code == 302 and "error=access_denied" in r.headers["location"]
