"""HTTP API of the auth service: request -> handler; no SQL, no sessions, no business rules, no access checks.

Public: `/api/auth/...` (accounts, sessions, ANAF connections, delegation links, API keys),
`/.well-known/jwks.json`.
Internal (X-Service-Token): `/internal/connections/{id}/access-token`, `/internal/connections/{id}/refresh`,
`/internal/companies/{cif}/access-token`, `/internal/account-links/{id}`, `/internal/connections/{id}/grants`,
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
from spvhub_common.http import app_deps
from spvhub_common.security import CurrentUser, Principal, ServiceCaller

from spvhub_auth import handlers
from spvhub_auth.handlers import Deps

router = APIRouter(prefix="/api/auth", tags=["auth"])
internal = APIRouter(prefix="/internal", tags=["internal"])
wellknown = APIRouter(tags=["jwks"])

ServiceDeps = Annotated[Deps, Depends(app_deps)]


async def optional_principal(request: Request, authorization: Annotated[str | None, Header()] = None
                             ) -> Principal | None:
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    principal: Principal = await request.app.state.jwks.verify(authorization.split(" ", 1)[1].strip())
    request.state.principal = principal  # errors answer in the caller's language, as on every other route
    return principal


MaybeUser = Annotated[Principal | None, Depends(optional_principal)]


def _ua(request: Request) -> str | None:
    return request.headers.get("user-agent")


def _client(request: Request, deps: Deps) -> str:
    """The caller's address (X-Forwarded-For only from a configured trusted proxy): what throttling counts by."""
    return client_address(request, deps.settings.trusted_proxies)


# --- request bodies ------------------------------------------------------------------------------

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


Permission = Literal["read", "sync", "file", "invitations"]
MAX_COMPANIES = 200


class CreateKey(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="what the key is for, e.g. 'ERP production'")
    companies: list[str] = Field(min_length=1, max_length=MAX_COMPANIES,
                                 description="CIFs the key may act on; the creator must manage each one")
    permissions: list[Permission] = Field(min_length=1, description="read, sync, file (invoices), invitations")
    expires_at: datetime | None = Field(None, description="optional; at most api_key_max_days ahead")


class Introspect(BaseModel):
    key: str = Field(max_length=200)
    method: str = Field("GET", max_length=16)
    path: str = Field("", max_length=2000)
    request_id: str | None = Field(None, max_length=128)
    client: str | None = Field(None, max_length=64)


# --- responses -----------------------------------------------------------------------------------

class UserOut(BaseModel):
    id: str
    email: str
    name: str
    locale: str
    created_at: datetime
    email_verified: bool


class SessionOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    refresh_token: str
    user: UserOut


class Verified(BaseModel):
    status: Literal["verified"]
    email: str
    email_verified: bool


class Accepted(BaseModel):
    status: Literal["accepted"]
    message: str


class EmailChangePending(BaseModel):
    status: Literal["pending"]
    pending_email: str
    message: str


class PasswordResult(BaseModel):
    status: Literal["password_reset", "password_changed"]
    sessions_ended: int


class SessionItem(BaseModel):
    id: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None = None
    address: str | None = None
    current: bool


class SessionList(BaseModel):
    items: list[SessionItem]


class AuthorizationStart(BaseModel):
    company_cif: str
    authorize_url: str
    state_expires_at: datetime


class DelegationOpened(AuthorizationStart):
    delegation_expires_at: datetime


class ConnectionOut(BaseModel):
    id: str
    company_cif: str
    state: str
    authorizing_person: str
    authorized_by_user_id: str
    certificate_serial: str
    services: list[str]
    authorized_at: datetime
    access_expires_at: datetime
    refresh_expires_at: datetime
    family_expires_at: datetime | None = None
    must_act_by: datetime
    next_renewal_at: datetime
    last_refreshed_at: datetime | None = None
    via_delegation: bool
    warnings_sent_days: list[int]
    reauthorization_reason: str | None = None
    reauthorization_message: str | None = None
    revoked_at: datetime | None = None
    last_error: str | None = None
    days_until_must_act: int | None = Field(None, description="absent once re-authorization is required or revoked")


class AuthorizedConnection(ConnectionOut):
    rights_checked: bool
    message: str


class ConnectionList(BaseModel):
    items: list[ConnectionOut]


class DelegationOut(BaseModel):
    id: str
    company_cif: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    status: Literal["open", "used", "expired", "revoked"]
    used_at: datetime | None = None
    used_by_name: str | None = None
    connection_id: str | None = None
    revoked_at: datetime | None = None


class CreatedDelegation(DelegationOut):
    token: str = Field(description="shown this once")
    url: str


class DelegationList(BaseModel):
    items: list[DelegationOut]


class Jwks(BaseModel):
    keys: list[dict[str, Any]]


class AccessTokenOut(BaseModel):
    connection_id: str
    access_token: str
    expires_at: datetime
    certificate_serial: str
    company_cif: str
    status: str


class AccountLink(BaseModel):
    request_id: str
    purpose: str
    email: str
    expires_at: datetime
    link: str


class GrantOut(BaseModel):
    caller_service: str
    kind: str
    outcome: str
    at: datetime


class GrantList(BaseModel):
    items: list[GrantOut]


class KeyOut(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="the key's first characters, to recognize it; never the key")
    created_by: str
    companies: list[str]
    permissions: list[str]
    status: Literal["active", "expired", "revoked"]
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    last_used_request_id: str | None = None
    use_count: int


class CreatedKey(KeyOut):
    key: str = Field(description="the secret, shown this once: send it as `Authorization: Bearer spvk_...`")


class KeyList(BaseModel):
    items: list[KeyOut]


class UsageOut(BaseModel):
    at: datetime
    service: str
    method: str
    path: str
    request_id: str | None = None
    client: str | None = None
    outcome: str


class UsagePage(BaseModel):
    items: list[UsageOut]
    next_cursor: str | None = None


class IntrospectOut(BaseModel):
    key_id: str
    user_id: str
    email: str
    name: str
    locale: str
    companies: list[str]
    permissions: list[str]


# --- accounts ------------------------------------------------------------------------------------

@router.post("/signup", status_code=201, response_model=SessionOut)
async def signup(body: SignUp, deps: ServiceDeps, request: Request) -> dict[str, Any]:
    """Opens a session at once; the address gets a verification link (`POST /api/auth/email/verify`)."""
    return await handlers.sign_up(deps, email=body.email, password=body.password, name=body.name,
                                  locale=body.locale, invitation_id=body.invitation_id,
                                  client=_client(request, deps), user_agent=_ua(request))


@router.post("/login", response_model=SessionOut)
async def login(body: LogIn, deps: ServiceDeps, request: Request) -> dict[str, Any]:
    return await handlers.log_in(deps, email=body.email, password=body.password, client=_client(request, deps),
                                 user_agent=_ua(request))


@router.post("/token/refresh", response_model=SessionOut)
async def refresh(body: RefreshBody, deps: ServiceDeps, request: Request) -> dict[str, Any]:
    return await handlers.refresh_session(deps, refresh_token=body.refresh_token, client=_client(request, deps),
                                          user_agent=_ua(request))


@router.post("/logout", status_code=204, response_class=Response)
async def logout(body: RefreshBody, deps: ServiceDeps) -> Response:
    await handlers.log_out(deps, refresh_token=body.refresh_token)
    return Response(status_code=204)


@router.get("/me", response_model=UserOut)
async def me(user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.get_profile(deps, user)


@router.patch("/me", response_model=UserOut)
async def patch_me(body: ProfilePatch, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.update_profile(deps, user, name=body.name, locale=body.locale)


# --- account lifecycle ---------------------------------------------------------------------------

@router.post("/email/verify", response_model=Verified)
async def verify_email(body: TokenBody, deps: ServiceDeps) -> dict[str, Any]:
    """Confirm an address with the token of its link (the sign-up address, or the new one of a change)."""
    return await handlers.verify_email(deps, body.token)


@router.post("/email/verification/resend", status_code=202, response_model=Accepted)
async def resend_verification(body: EmailBody, deps: ServiceDeps, request: Request) -> dict[str, Any]:
    """Always 202 with the same body: the answer does not tell whether the address has an account."""
    return await handlers.resend_verification(deps, email=body.email, client=_client(request, deps))


@router.post("/email/change", status_code=202, response_model=EmailChangePending)
async def change_email(body: ChangeEmail, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    """The new address gets a link to confirm (the account moves only then); the current address is told."""
    return await handlers.change_email(deps, user, new_email=body.new_email, password=body.password)


@router.post("/password/forgot", status_code=202, response_model=Accepted)
async def forgot_password(body: EmailBody, deps: ServiceDeps, request: Request) -> dict[str, Any]:
    """E-mails a reset link. Always 202 with the same body, whether or not the address has an account."""
    return await handlers.forgot_password(deps, email=body.email, client=_client(request, deps))


@router.post("/password/reset", response_model=PasswordResult)
async def reset_password(body: ResetPassword, deps: ServiceDeps) -> dict[str, Any]:
    """Set a new password with the token of a reset link; every session of the account ends."""
    return await handlers.reset_password(deps, token=body.token, password=body.password)


@router.post("/password/change", response_model=PasswordResult)
async def change_password(body: ChangePassword, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    """The current password is required; every other session ends."""
    return await handlers.change_password(deps, user, current_password=body.current_password,
                                          new_password=body.new_password)


@router.get("/sessions", response_model=SessionList)
async def list_sessions(user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.list_sessions(deps, user)


@router.post("/sessions/{session_id}/revoke", status_code=204, response_class=Response)
async def revoke_session(session_id: str, user: CurrentUser, deps: ServiceDeps) -> Response:
    await handlers.revoke_session(deps, user, session_id)
    return Response(status_code=204)


# --- ANAF authorization ----------------------------------------------------------------------------

@router.post("/anaf/authorizations", status_code=201, response_model=AuthorizationStart)
async def start_authorization(body: StartAuthorization, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.start_authorization(deps, user, body.company_cif)


@router.get("/anaf/callback", response_model=None,
            responses={200: {"model": AuthorizedConnection}, 303: {"description": "to `callback_result_url`"}})
async def anaf_callback(deps: ServiceDeps, code: str | None = Query(None, max_length=200),
                        state: str | None = Query(None, max_length=4000),
                        error: str | None = Query(None, max_length=200),
                        error_description: str | None = Query(None, max_length=1000)) -> Response:
    """Where ANAF redirects the browser. With `callback_result_url` set, the browser is sent there (303) with
    `?status=ok&connection_id=` or `?status=error&code=`; otherwise the JSON result is returned."""
    target = deps.settings.callback_result_url
    try:
        result = await handlers.complete_authorization(deps, code=code, state=state, error=error,
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


@router.get("/anaf/connections", response_model=ConnectionList, response_model_exclude_unset=True)
async def list_connections(user: CurrentUser, deps: ServiceDeps,
                           company_cif: str | None = Query(None, max_length=20)) -> dict[str, Any]:
    return {"items": await handlers.list_connections(deps, user, company_cif)}


@router.get("/anaf/connections/{connection_id}", response_model=ConnectionOut, response_model_exclude_unset=True)
async def get_connection(connection_id: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.get_connection(deps, user, connection_id)


@router.post("/anaf/connections/{connection_id}/revoke", response_model=ConnectionOut,
             response_model_exclude_unset=True)
async def revoke_connection(connection_id: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.revoke_connection(deps, user, connection_id)


# --- delegation links ------------------------------------------------------------------------------

@router.post("/anaf/delegations", status_code=201, response_model=CreatedDelegation)
async def create_delegation(body: CreateDelegation, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.create_delegation(deps, user, body.company_cif)


@router.get("/anaf/delegations", response_model=DelegationList)
async def list_delegations(user: CurrentUser, deps: ServiceDeps,
                           company_cif: str = Query(max_length=20)) -> dict[str, Any]:
    return {"items": await handlers.list_delegations(deps, user, company_cif)}


@router.post("/anaf/delegations/{delegation_id}/revoke", response_model=DelegationOut)
async def revoke_delegation(delegation_id: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.revoke_delegation(deps, user, delegation_id)


@router.post("/anaf/delegations/open", response_model=DelegationOpened)
async def open_delegation(body: OpenDelegation, deps: ServiceDeps, user: MaybeUser,
                          request: Request) -> dict[str, Any]:
    return await handlers.open_delegation(deps, token=body.token, name=body.name, principal=user,
                                          client=_client(request, deps))


@router.get("/anaf/delegations/open", response_class=RedirectResponse, status_code=302,
            responses={302: {"description": "to ANAF's certificate page"}})
async def open_delegation_browser(deps: ServiceDeps, user: MaybeUser, request: Request,
                                  token: str = Query(max_length=200),
                                  name: str | None = Query(None, max_length=200)) -> RedirectResponse:
    """The link itself: opening it in a browser goes straight to ANAF's certificate page."""
    result = await handlers.open_delegation(deps, token=token, name=name, principal=user,
                                            client=_client(request, deps))
    return RedirectResponse(result["authorize_url"], status_code=302)


# --- API keys (route names keep the operation ids clients were generated with) ---------------------

@router.post("/api-keys", status_code=201, response_model=CreatedKey, tags=["api keys"],
             summary="Create an API key (shown once) for companies you manage")
async def create(body: CreateKey, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.create_key(deps, user, name=body.name, companies=body.companies,
                                     permissions=list(body.permissions), expires_at=body.expires_at)


@router.get("/api-keys", response_model=KeyList, tags=["api keys"],
            summary="Your keys and the keys on companies you manage (never the secret)")
async def list_(user: CurrentUser, deps: ServiceDeps,
                        company_cif: str | None = Query(None, max_length=20)) -> dict[str, Any]:
    return {"items": await handlers.list_keys(deps, user, company_cif)}


@router.post("/api-keys/{key_id}/revoke", response_model=KeyOut, tags=["api keys"],
             summary="Revoke a key; the next request with it gets 401")
async def revoke(key_id: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.revoke_key(deps, user, key_id[:64])


@router.get("/api-keys/{key_id}/usage", response_model=UsagePage, tags=["api keys"],
            summary="Every use of the key, newest first")
async def usage(key_id: str, user: CurrentUser, deps: ServiceDeps, limit: int = Query(50, ge=1, le=500),
                        cursor: str | None = Query(None, max_length=100)) -> dict[str, Any]:
    return await handlers.key_usage(deps, user, key_id[:64], limit, cursor)


# --- JWKS ----------------------------------------------------------------------------------------

@wellknown.get("/.well-known/jwks.json", response_model=Jwks)
async def jwks(deps: ServiceDeps, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=60"
    return await handlers.signing_keys(deps)


# --- internal ------------------------------------------------------------------------------------

@internal.get("/connections/{connection_id}/access-token", response_model=AccessTokenOut)
async def internal_access_token(connection_id: str, caller: ServiceCaller, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.access_token_for(deps, connection_id, caller)


@internal.post("/connections/{connection_id}/refresh", response_model=AccessTokenOut)
async def internal_refresh(connection_id: str, caller: ServiceCaller, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.refresh_for_caller(deps, connection_id, caller)


@internal.get("/companies/{cif}/access-token", response_model=AccessTokenOut)
async def internal_access_token_for_cif(cif: str, caller: ServiceCaller, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.access_token_for_cif(deps, cif, caller)


@internal.get("/account-links/{request_id}", response_model=AccountLink)
async def internal_account_link(request_id: str, caller: ServiceCaller, deps: ServiceDeps) -> dict[str, Any]:
    """The link of an account e-mail (notifier, at send time); 410 once used, replaced or expired."""
    return await handlers.link_for(deps, request_id)


@internal.get("/connections/{connection_id}/grants", response_model=GrantList)
async def internal_grants(connection_id: str, caller: ServiceCaller, deps: ServiceDeps) -> dict[str, Any]:
    return {"items": await handlers.token_grants(deps, connection_id)}


@internal.post("/api-keys/introspect", response_model=IntrospectOut, tags=["internal"],
               summary="Resolve an API key for a service and count its use")
async def introspect_route(body: Introspect, caller: ServiceCaller, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.introspect(deps, caller, key=body.key, method=body.method, path=body.path,
                                     request_id=body.request_id, client=body.client)
