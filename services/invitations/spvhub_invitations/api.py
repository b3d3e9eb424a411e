"""HTTP API of the invitations service: request -> command -> handler; no SQL, no business rules."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from spvhub_common.http import app_deps
from spvhub_common.paging import Page
from spvhub_common.security import CurrentUser, ServiceCaller

from spvhub_invitations import handlers
from spvhub_invitations.handlers import Deps, NewInvitation

router = APIRouter(prefix="/api/invitations", tags=["invitations"])
internal = APIRouter(prefix="/internal/invitations", tags=["internal"])


ServiceDeps = Annotated[Deps, Depends(app_deps)]


class InvitationIn(BaseModel):
    client_cif: str = Field(..., max_length=20, examples=["RO12345678"],
                            description="the client: its CIF; a natural person's CNP (13 digits, control digit "
                                        "checked: it becomes the person key and is kept only masked) or the person "
                                        "key (`PF...`) the firm's lists show")
    name: str = Field(..., max_length=300, description="the client's representative")
    email: str = Field(..., max_length=320)
    phone: str = Field(..., max_length=40, examples=["0722 123 456", "+40722123456"])
    locale: Literal["ro", "en"] = "ro"


# the firm's id is read by spvhub_common.pii.parse_company_id in the handler, like every company id in an address:
# a CIF (control digit checked) or a person key; a CNP is refused with `cnp_in_url`
FIRM_ID = "the accounting firm's CIF or key (you need access to it); never a CNP"


class SendIn(BaseModel):
    firm_cif: str = Field(..., max_length=20, description=FIRM_ID)
    invitations: list[InvitationIn] = Field(..., min_length=1, description="one or many (bulk)")


class InvitationOut(BaseModel):
    id: str
    firm_cif: str
    firm_name: str | None
    client_cif: str = Field(..., description="the client's id on the platform (a CIF or a person key): for links")
    client_kind: Literal["cif", "cnp"]
    client_tax_id: str = Field(..., description="the client's id to show: the CIF, a natural person's CNP masked "
                                                "(1********0008), or the person key when the CNP is not known here")
    client_name: str | None
    name: str
    email: str
    phone: str
    locale: str
    status: Literal["pending", "claimed", "accepted", "declined", "expired", "revoked"]
    created_at: datetime
    sent_at: datetime
    expires_at: datetime
    send_count: int
    claimed_by: str | None
    claimed_at: datetime | None
    answered_at: datetime | None
    expired_at: datetime | None
    revoked_at: datetime | None


class ItemError(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = {}


class ItemOut(BaseModel):
    index: int
    client_cif: str = Field(..., description="the client's platform key; a refused item's input as typed, a CNP "
                                             "masked")
    ok: bool
    invitation: InvitationOut | None = None
    error: ItemError | None = None


class SendOut(BaseModel):
    created: int
    failed: int
    results: list[ItemOut]


class CandidateOut(BaseModel):
    client_cif: str
    client_kind: Literal["cif", "cnp"]
    client_tax_id: str = Field(..., description="the CIF, or a natural person's CNP masked")
    client_name: str | None
    invitation: InvitationOut | None = Field(None, description="the latest invitation to this client, if any")


class CandidatesOut(BaseModel):
    firm_cif: str
    firm_name: str | None
    missing: list[Literal["accounting_services_flag", "efactura_authorization"]] = Field(
        ..., description="the preconditions of inviting that the firm does not meet yet")
    clients: list[CandidateOut]


class PreviewCompany(BaseModel):
    cif: str
    name: str | None


class PreviewClient(PreviewCompany):
    kind: Literal["cif", "cnp"]
    tax_id: str = Field(..., description="the CIF, or a natural person's CNP masked (1********0008)")
    address: str | None
    trade_register_no: str | None


class PreviewPerson(BaseModel):
    name: str
    email: str


class PreviewOut(BaseModel):
    invitation_id: str
    status: Literal["pending"]
    expires_at: datetime
    firm: PreviewCompany
    client_company: PreviewClient
    representative: PreviewPerson


class LinkOut(BaseModel):
    invitation_id: str
    link: str
    expires_at: datetime
    status: Literal["pending"]
    email: str
    name: str
    locale: str
    firm_cif: str
    firm_name: str | None
    client_cif: str
    client_kind: Literal["cif", "cnp"]
    client_tax_id: str = Field(..., description="what the e-mail shows of the client: the CIF, a CNP masked")
    client_name: str | None


class ResendIn(BaseModel):
    name: str | None = Field(None, max_length=300)
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=40)


class ClaimIn(BaseModel):
    token: str = Field(..., max_length=200)


@router.post("", response_model=SendOut, summary="Invite discovered clients (one or in bulk)",
             responses={201: {"description": "every invitation was sent"},
                        207: {"description": "some items failed; see each result's error"}})
async def send(body: SendIn, user: CurrentUser, deps: ServiceDeps) -> JSONResponse:
    res = await handlers.send_invitations(deps, user, body.firm_cif, [
        NewInvitation(client_cif=i.client_cif, name=i.name, email=i.email, phone=i.phone, locale=i.locale)
        for i in body.invitations])
    out = SendOut(created=res.created, failed=len(res.items) - res.created,
                  results=[ItemOut.model_validate(i, from_attributes=True) for i in res.items])
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if out.failed == 0 else 207)


@router.get("", response_model=Page[InvitationOut], summary="The firm's invitations with their status, newest first")
async def list_for_firm(user: CurrentUser, deps: ServiceDeps,
                        firm_cif: str = Query(..., max_length=20, description=FIRM_ID),
                        status: str | None = None, limit: int = Query(50, ge=1, le=500),
                        cursor: str | None = Query(None, max_length=200,
                                                   description="`next_cursor` of the previous page")) -> dict[str, Any]:
    return await handlers.list_for_firm(deps, user, firm_cif, status, limit=limit, cursor=cursor)


@router.get("/candidates", response_model=CandidatesOut,
            summary="The firm's discovered clients and the state of their latest invitation")
async def candidates(user: CurrentUser, deps: ServiceDeps,
                     firm_cif: str = Query(..., max_length=20, description=FIRM_ID)) -> dict[str, Any]:
    return await handlers.candidates(deps, user, firm_cif)


@router.get("/received", response_model=list[InvitationOut], summary="Invitations claimed by the caller")
async def received(user: CurrentUser, deps: ServiceDeps) -> list[dict[str, Any]]:
    return await handlers.received(deps, user)


@router.get("/preview", response_model=PreviewOut, summary="What the sign-up page shows for a link (no authentication)")
async def preview(deps: ServiceDeps, token: str = Query(..., max_length=200)) -> dict[str, Any]:
    return await handlers.preview(deps, token)


@router.post("/claim", response_model=InvitationOut, summary="Use the link's token from the new account")
async def claim(body: ClaimIn, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.claim(deps, user, body.token)


@router.get("/{invitation_id}", response_model=InvitationOut)
async def get_one(invitation_id: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.get_for_user(deps, user, invitation_id)


@router.post("/{invitation_id}/resend", response_model=InvitationOut,
             summary="New link and new 15-day expiry; the previous link stops working")
async def resend(invitation_id: str, user: CurrentUser, deps: ServiceDeps,
                 body: ResendIn | None = None) -> dict[str, Any]:
    b = body or ResendIn(name=None, email=None, phone=None)
    return await handlers.resend(deps, user, invitation_id, name=b.name, email=b.email, phone=b.phone)


@router.post("/{invitation_id}/revoke", response_model=InvitationOut)
async def revoke(invitation_id: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.revoke(deps, user, invitation_id)


@router.post("/{invitation_id}/accept", response_model=InvitationOut, summary="The claiming user accepts")
async def accept(invitation_id: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.accept(deps, user, invitation_id)


@router.post("/{invitation_id}/decline", response_model=InvitationOut, summary="The claiming user declines")
async def decline(invitation_id: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.decline(deps, user, invitation_id)


@internal.get("/{invitation_id}/link", response_model=LinkOut,
              summary="The current link of a pending invitation (notifier only)")
async def link(invitation_id: str, _caller: ServiceCaller, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.link(deps, invitation_id)
