"""HTTP API of the auth service: request -> command -> handler; no SQL, no business rules.

Public: `/api/auth/...` (accounts, sessions, ANAF connections, delegation links, API keys),
`/.well-known/jwks.json`.
Internal (X-Service-Token): `/internal/connections/{id}/access-token`, `/internal/connections/{id}/refresh`,
`/internal/companies/{cif}/access-token`, `/internal/account-links/{id}`,
`/internal/api-keys/introspect`.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from spvhub_common.clientaddr import client_address
from spvhub_common.errors import AppError, error_body
from spvhub_common.security import CurrentUser, Principal, ServiceCaller

from spvhub_auth import account as A
from spvhub_auth import apikeys
from spvhub_auth import handlers as H

router = APIRouter(prefix="/api/auth", tags=["auth"])
internal = APIRouter(prefix="/internal", tags=["internal"])
wellknown = APIRouter(tags=["jwks"])


def deps(request: Request) -> H.Deps:
    return request.app.state.deps


Deps = Annotated[H.Deps, Depends(deps)]


async def optional_principal(request: Request, authorization: Annotated[str | None, Header()] = None
                             ) -> Principal | None:
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    return await request.app.state.jwks.verify(authorization.split(" ", 1)[1].strip())


MaybeUser = Annotated[Principal | None, Depends(optional_principal)]


# --- schemas -------------------------------------------------------------------------------------

class SignUp(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1000)
    name: str = Field(max_length=200)
    locale: Literal["ro", "en"] = "ro"
    invitation_id: str | None = Field(None, max_length=64)


class LogIn(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1000)


class RefreshBody(BaseModel):
    refresh_token: str = Field(max_length=200)


class ProfilePatch(BaseModel):
    name: str | None = Field(None, max_length=200)
    locale: Literal["ro", "en"] | None = None


class TokenBody(BaseModel):
    token: str = Field(max_length=200)


class EmailBody(BaseModel):
    email: str = Field(max_length=320)


class ResetPassword(BaseModel):
    token: str = Field(max_length=200)
    password: str = Field(max_length=1000)


class ChangePassword(BaseModel):
    current_password: str = Field(max_length=1000)
    new_password: str = Field(max_length=1000)


class ChangeEmail(BaseModel):
    new_email: str = Field(max_length=320)
    password: str = Field(max_length=1000, description="the current password")


class StartAuthorization(BaseModel):
    company_cif: str = Field(max_length=20)


class OpenDelegation(BaseModel):
    token: str = Field(max_length=200)
    name: str | None = Field(None, max_length=200, description="the delegate's name when not signed in")


class CreateDelegation(BaseModel):
    company_cif: str = Field(max_length=20)


# --- accounts ------------------------------------------------------------------------------------

@router.post("/signup", status_code=201)
async def signup(body: SignUp, d: Deps, request: Request) -> dict[str, Any]:
    """Opens a session at once; the address gets a verification link (`POST /api/auth/email/verify`)."""
    return await H.sign_up(d, email=body.email, password=body.password, name=body.name, locale=body.locale,
                           invitation_id=body.invitation_id, client=_client(request, d), user_agent=_ua(request))


@router.post("/login")
async def login(body: LogIn, d: Deps, request: Request) -> dict[str, Any]:
    return await H.log_in(d, email=body.email, password=body.password, client=_client(request, d),
                          user_agent=_ua(request))


def _ua(request: Request) -> str | None:
    return request.headers.get("user-agent")


def _client(request: Request, d: H.Deps) -> str:
    """The caller's address (X-Forwarded-For only from a configured trusted proxy): what throttling counts by."""
    return client_address(request, d.settings.trusted_proxies)


@router.post("/token/refresh")
async def refresh(body: RefreshBody, d: Deps, request: Request) -> dict[str, Any]:
    return await H.refresh_session(d, refresh_token=body.refresh_token, client=_client(request, d),
                                   user_agent=_ua(request))


@router.post("/logout", status_code=204)
async def logout(body: RefreshBody, d: Deps) -> Response:
    await H.log_out(d, refresh_token=body.refresh_token)
    return Response(status_code=204)


@router.get("/me")
async def me(user: CurrentUser, d: Deps) -> dict[str, Any]:
    return await H.get_profile(d, user)


@router.patch("/me")
async def patch_me(body: ProfilePatch, user: CurrentUser, d: Deps) -> dict[str, Any]:
    return await H.update_profile(d, user, name=body.name, locale=body.locale)


# --- account lifecycle ---------------------------------------------------------------------------

@router.post("/email/verify")
async def verify_email(body: TokenBody, d: Deps) -> dict[str, Any]:
    """Confirm an address with the token of its link (the sign-up address, or the new one of a change)."""
    return await A.verify_email(d, body.token)


@router.post("/email/verification/resend", status_code=202)
async def resend_verification(body: EmailBody, d: Deps, request: Request) -> dict[str, Any]:
    """Always 202 with the same body: the answer does not tell whether the address has an account."""
    return await A.resend_verification(d, email=body.email, client=_client(request, d))


@router.post("/email/change", status_code=202)
async def change_email(body: ChangeEmail, user: CurrentUser, d: Deps) -> dict[str, Any]:
    """The new address gets a link to confirm (the account moves only then); the current address is told."""
    return await A.change_email(d, user, new_email=body.new_email, password=body.password)


@router.post("/password/forgot", status_code=202)
async def forgot_password(body: EmailBody, d: Deps, request: Request) -> dict[str, Any]:
    """E-mails a reset link. Always 202 with the same body, whether or not the address has an account."""
    return await A.forgot_password(d, email=body.email, client=_client(request, d))


@router.post("/password/reset")
async def reset_password(body: ResetPassword, d: Deps) -> dict[str, Any]:
    """Set a new password with the token of a reset link; every session of the account ends."""
    return await A.reset_password(d, token=body.token, password=body.password)


@router.post("/password/change")
async def change_password(body: ChangePassword, user: CurrentUser, d: Deps) -> dict[str, Any]:
    """The current password is required; every other session ends."""
    return await A.change_password(d, user, current_password=body.current_password, new_password=body.new_password)


@router.get("/sessions")
async def list_sessions(user: CurrentUser, d: Deps) -> dict[str, Any]:
    return await A.list_sessions(d, user)


@router.post("/sessions/{session_id}/revoke", status_code=204)
async def revoke_session(session_id: str, user: CurrentUser, d: Deps) -> Response:
    await A.revoke_session(d, user, session_id)
    return Response(status_code=204)


# --- ANAF authorization ----------------------------------------------------------------------------

@router.post("/anaf/authorizations", status_code=201)
async def start_authorization(body: StartAuthorization, user: CurrentUser, d: Deps) -> dict[str, Any]:
    return await H.start_authorization(d, user, body.company_cif)


@router.get("/anaf/callback")
async def anaf_callback(d: Deps, code: str | None = Query(None, max_length=200),
                        state: str | None = Query(None, max_length=4000),
                        error: str | None = Query(None, max_length=200),
                        error_description: str | None = Query(None, max_length=1000)) -> Response:
    """Where ANAF redirects the browser. With `callback_result_url` set, the browser is sent there (303) with
    `?status=ok&connection_id=` or `?status=error&code=`; otherwise the JSON result is returned."""
    target = d.settings.callback_result_url
    try:
        result = await H.complete_authorization(d, code=code, state=state, error=error,
                                                error_description=error_description)
    except AppError as exc:
        if target:
            return RedirectResponse(f"{target}?status=error&code={exc.code}", status_code=303)
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status)
    if target:
        return RedirectResponse(f"{target}?status=ok&connection_id={result['id']}", status_code=303)
    return JSONResponse(_jsonable(result))


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, datetime):
        return v.isoformat()
    return v


@router.get("/anaf/connections")
async def list_connections(user: CurrentUser, d: Deps,
                           company_cif: str | None = Query(None, max_length=20)) -> dict[str, Any]:
    return {"items": await H.list_connections(d, user, company_cif)}


@router.get("/anaf/connections/{connection_id}")
async def get_connection(connection_id: str, user: CurrentUser, d: Deps) -> dict[str, Any]:
    return await H.get_connection(d, user, connection_id)


@router.post("/anaf/connections/{connection_id}/revoke")
async def revoke_connection(connection_id: str, user: CurrentUser, d: Deps) -> dict[str, Any]:
    return await H.revoke_connection(d, user, connection_id)


# --- delegation links ------------------------------------------------------------------------------

@router.post("/anaf/delegations", status_code=201)
async def create_delegation(body: CreateDelegation, user: CurrentUser, d: Deps) -> dict[str, Any]:
    return await H.create_delegation(d, user, body.company_cif)


@router.get("/anaf/delegations")
async def list_delegations(user: CurrentUser, d: Deps, company_cif: str = Query(max_length=20)) -> dict[str, Any]:
    return {"items": await H.list_delegations(d, user, company_cif)}


@router.post("/anaf/delegations/{delegation_id}/revoke")
async def revoke_delegation(delegation_id: str, user: CurrentUser, d: Deps) -> dict[str, Any]:
    return await H.revoke_delegation(d, user, delegation_id)


@router.post("/anaf/delegations/open")
async def open_delegation(body: OpenDelegation, d: Deps, user: MaybeUser, request: Request) -> dict[str, Any]:
    return await H.open_delegation(d, token=body.token, name=body.name, principal=user, client=_client(request, d))


@router.get("/anaf/delegations/open")
async def open_delegation_browser(d: Deps, user: MaybeUser, request: Request, token: str = Query(max_length=200),
                                  name: str | None = Query(None, max_length=200)) -> Response:
    """The link itself: opening it in a browser goes straight to ANAF's certificate page."""
    result = await H.open_delegation(d, token=token, name=name, principal=user, client=_client(request, d))
    return RedirectResponse(result["authorize_url"], status_code=302)


# --- JWKS ----------------------------------------------------------------------------------------

@wellknown.get("/.well-known/jwks.json")
async def jwks(d: Deps) -> JSONResponse:
    return JSONResponse(await d.ring.jwks_fresh(), headers={"Cache-Control": "public, max-age=60"})


# --- internal ------------------------------------------------------------------------------------

@internal.get("/connections/{connection_id}/access-token")
async def internal_access_token(connection_id: str, caller: ServiceCaller, d: Deps) -> dict[str, Any]:
    return await H.access_token_for(d, connection_id, caller)


@internal.post("/connections/{connection_id}/refresh")
async def internal_refresh(connection_id: str, caller: ServiceCaller, d: Deps) -> dict[str, Any]:
    return await H.refresh_for_caller(d, connection_id, caller)


@internal.get("/companies/{cif}/access-token")
async def internal_access_token_for_cif(cif: str, caller: ServiceCaller, d: Deps) -> dict[str, Any]:
    return await H.access_token_for_cif(d, cif, caller)


@internal.get("/account-links/{request_id}")
async def internal_account_link(request_id: str, caller: ServiceCaller, d: Deps) -> dict[str, Any]:
    """The link of an account e-mail (notifier, at send time); 410 once used, replaced or expired."""
    return await A.link_for(d, request_id)


@internal.get("/connections/{connection_id}/grants")
async def internal_grants(connection_id: str, caller: ServiceCaller, d: Deps) -> dict[str, Any]:
    return {"items": await H.token_grants(d, connection_id)}


router.include_router(apikeys.router)
internal.include_router(apikeys.internal)
