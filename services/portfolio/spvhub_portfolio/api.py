"""HTTP API of the portfolio service: request -> handler; no SQL, no sessions, no business rules.

Every route is scoped by the caller's rights on the CIF in its path (direct membership, or a firm user on an
active client), checked by the handlers; nothing takes a CIF on trust. Every operation declares its response;
optional fields a handler leaves out stay out of the answer (`response_model_exclude_unset`), as they always have.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema
from spvhub_common.errors import AppError
from spvhub_common.http import app_deps
from spvhub_common.paging import Page
from spvhub_common.security import CurrentUser

from spvhub_portfolio import handlers
from spvhub_portfolio.domain import MAX_CSV_FIELD, MAX_CSV_ROWS
from spvhub_portfolio.handlers import Deps

router = APIRouter(prefix="/api/portfolio", tags=["portfolio"])

MAX_CSV_BYTES = 2 * 1024 * 1024

ServiceDeps = Annotated[Deps, Depends(app_deps)]

# Times are written as Python's isoformat (`+00:00`), as this API always has, not pydantic's `Z`.
Timestamp = Annotated[datetime, PlainSerializer(lambda v: v.isoformat(), return_type=str, when_used="json"),
                      WithJsonSchema({"type": "string", "format": "date-time"})]


# -- requests ---------------------------------------------------------------------------------------------
class RegisterCompany(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cif: str = Field(..., max_length=32, examples=["RO 14399840"],
                     description="CIF with or without RO, spaces ok; or a natural person's CNP (13 digits, control "
                                 "digit checked), which becomes the company's person key (`PF...`) and is never "
                                 "shown in clear to anyone but its verified members")
    name: str | None = Field(None, max_length=200,
                             description="a natural person's name (ANAF's registry has none for a CNP); ignored for "
                                         "a CIF, whose name comes from ANAF's registry")


class PatchCompany(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provides_accounting_services: bool | None = None


class SetMember(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["owner", "admin", "member"]


class AddMember(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(..., min_length=3, max_length=320, pattern=r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+$",
                       description="The e-mail address of an existing platform account")
    role: Literal["owner", "admin", "member"] = "member"


class CollaborationPermissions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    may_file: bool = Field(..., description="The accounting firm may file invoices and send messages at ANAF in the "
                                            "client's name")


class EndCollaboration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=500)


# -- responses --------------------------------------------------------------------------------------------
class RegistryOut(BaseModel):
    """ANAF's public registry data of a CIF."""

    cif: str
    name: str
    address: str
    trade_register_no: str
    vat_payer: bool
    efactura_registered: bool


class CompanyOut(RegistryOut):
    """A company as the caller sees it; which optional fields appear depends on how the caller reaches it.
    `cif` is the company's id on the platform (a CIF, or a natural person's key `PF...`): use it in links."""

    kind: Literal["cif", "cnp"] = Field(..., description="identified by a CIF, or a natural person by CNP")
    tax_id: str = Field(..., description="the id to show: the CIF; for a natural person the CNP to its verified "
                                         "members, masked (1********0008) to anyone else. Never put it in a URL.")

    provides_accounting_services: bool
    registry_checked_at: Timestamp | None
    role: str | None = Field(None, description="owner, admin, member, or accountant (a firm user on a client)")
    relation: Literal["own", "client"] | None = None
    verification: Literal["verified", "unverified", "not_applicable"] | None = None
    verification_hint: str | None = Field(None, description="how to get verified (only while unverified)")
    verification_hint_ro: str | None = None
    can_file: bool | None = None
    via_firm_cif: str | None = Field(None, description="the accounting firm through which the caller reaches it")
    collaboration_status: str | None = None
    collaboration_id: str | None = None
    accessible: bool | None = None


class CompaniesOut(BaseModel):
    companies: list[CompanyOut]
    count: int


class MemberOut(BaseModel):
    user_id: str
    email: str | None
    name: str | None
    role: str
    since: Timestamp
    verified: bool
    verified_via: str | None
    status: Literal["active", "pending_approval"]


class MembersOut(Page[MemberOut]):
    """One page of the members, in the order they joined (`total` counts every page)."""

    cif: str


class MemberRoleOut(BaseModel):
    user_id: str
    role: str
    verified: bool


class ConnectionDiscoveryOut(BaseModel):
    connection_id: str
    holder_cif: str
    mode: str = Field(..., description="inventory (ANAF listed the rights) or probe (each candidate asked)")
    complete: bool
    count: int
    cifs: list[str]
    gained: list[str]
    lost: list[str]
    not_checked: list[str]
    probed: int


class DiscoveryOut(BaseModel):
    cif: str
    count: int
    cifs: list[str]
    connections: list[ConnectionDiscoveryOut]


class CandidatesUploadOut(BaseModel):
    cif: str
    received: int
    added: int
    total: int


class CandidatesOut(BaseModel):
    cif: str
    candidates: list[str]


class DiscoveredCompanyOut(RegistryOut):
    """A company the firm's certificate has rights on; a natural person (`kind` cnp) has no registry data: its name
    is the one the person gave, else "Persoană fizică"."""

    kind: Literal["cif", "cnp"] = Field(..., description="identified by a CIF, or a natural person by CNP")
    tax_id: str = Field(..., description="the id to show: the CIF; for a natural person the CNP masked "
                                         "(1********0008): the firm is not one of the person's members. Links use "
                                         "`cif` (the person key `PF...`).")
    registry_found: bool
    discovered_at: Timestamp
    confirmed_at: Timestamp
    invited: bool
    invitation_status: str | None
    collaboration_status: str | None
    collaborating: bool


class DiscoveredOut(BaseModel):
    firm_cif: str
    count: int
    companies: list[DiscoveredCompanyOut]


class AuthorizationStatusOut(BaseModel):
    """The firm's e-Factura authorization: `missing`, `active` (with its last discovery) or why it is not."""

    status: str
    connection_id: str | None = None
    holder_name: str | None = None
    authorized_at: Timestamp | None = None
    last_discovery_at: Timestamp | None = None
    last_discovery_mode: str | None = None
    discovered_count: int | None = None
    last_discovery_complete: bool | None = None
    last_discovery_error: str | None = None
    reason: str | None = None


class BlockerOut(BaseModel):
    code: str
    message: str
    cifs: list[str] | None = None


class ClientStatusOut(BaseModel):
    cif: str
    kind: Literal["cif", "cnp"] = Field(..., description="identified by a CIF, or a natural person by CNP")
    tax_id: str = Field(..., description="the id to show: the CIF; for a natural person the CNP masked "
                                         "(1********0008): the firm is not one of the person's members. Links use "
                                         "`cif` (the person key `PF...`).")
    name: str
    collaboration_status: str | None
    invitation_status: str | None
    spv_rights: bool
    blocked_by: list[str]


class PortfolioStatusOut(BaseModel):
    firm_cif: str
    ready: bool
    provides_accounting_services: bool
    efactura_authorization: AuthorizationStatusOut
    blockers: list[BlockerOut]
    clients: list[ClientStatusOut]


class CollaborationOut(BaseModel):
    id: str
    firm_cif: str
    client_cif: str
    status: str
    side: Literal["firm", "client"]
    counterpart_cif: str
    kind: Literal["cif", "cnp"] = Field(..., description="the counterpart: a company by CIF, or a natural person")
    tax_id: str = Field(..., description="the counterpart's id to show: its CIF; a natural person client's CNP "
                                         "masked (1********0008) to the firm. Links use `counterpart_cif`.")
    counterpart_name: str
    created_at: Timestamp
    activated_at: Timestamp | None
    ended_at: Timestamp | None
    end_reason: str | None
    may_file: bool


class CollaborationsOut(BaseModel):
    cif: str
    collaborations: list[CollaborationOut]


# -- routes -----------------------------------------------------------------------------------------------
@router.post("/companies", status_code=201, response_model=CompanyOut, response_model_exclude_unset=True,
             summary="Register a company by CIF, or a natural person by CNP (the caller becomes owner)",
             responses={200: {"model": CompanyOut, "description": "the caller is already a member: nothing changed"}})
async def register_company(body: RegisterCompany, user: CurrentUser, deps: ServiceDeps,
                           response: Response) -> dict[str, Any]:
    company, created = await handlers.register_company(deps, user.user_id, body.cif, body.name)
    if not created:
        response.status_code = 200
    return company


@router.get("/registry/{cif}", response_model=RegistryOut,
            summary="ANAF's public registry data for a CIF (registers nothing)")
async def registry_lookup(cif: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.registry_lookup(deps, cif)


@router.get("/companies", response_model=CompaniesOut, response_model_exclude_unset=True,
            summary="The caller's companies and the collaborating clients of their firms")
async def list_companies(user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    items = await handlers.list_companies(deps, user.user_id)
    return {"companies": items, "count": len(items)}


@router.get("/companies/{cif}", response_model=CompanyOut, response_model_exclude_unset=True,
            summary="One company the caller may see")
async def get_company(cif: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.get_company(deps, user.user_id, cif)


@router.patch("/companies/{cif}", response_model=CompanyOut, response_model_exclude_unset=True,
              summary="Profile flags (owner/admin): provides accounting services")
async def patch_company(cif: str, body: PatchCompany, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.update_company_profile(deps, user.user_id, cif, body.provides_accounting_services)


@router.get("/companies/{cif}/members", response_model=MembersOut,
            summary="Members and roles, a page at a time; `status=pending_approval` lists the requests to join")
async def list_members(cif: str, user: CurrentUser, deps: ServiceDeps,
                       status: Literal["active", "pending_approval"] | None = None,
                       limit: int = Query(50, ge=1, le=500),
                       cursor: str | None = Query(None, max_length=200,
                                                  description="`next_cursor` of the previous page")) -> dict[str, Any]:
    page = await handlers.list_members(deps, user.user_id, cif, status=status, limit=limit, cursor=cursor)
    return {"cif": cif, **page}


@router.post("/companies/{cif}/members", status_code=201, response_model=MemberRoleOut,
             summary="Add an existing platform user, by e-mail (verified owner/admin); the member is verified")
async def add_member(cif: str, body: AddMember, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.add_member(deps, user.user_id, cif, body.email, body.role)


@router.put("/companies/{cif}/members/{member_id}", response_model=MemberRoleOut,
            summary="Change a member's role, or approve a pending member with a role (verified owner/admin)")
async def set_member(cif: str, member_id: str, body: SetMember, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    if not member_id or len(member_id) > 64:
        raise AppError("member id must be 1-64 characters.", code="invalid_user_id", status=422)
    return await handlers.set_member(deps, user.user_id, cif, member_id, body.role)


@router.delete("/companies/{cif}/members/{member_id}", status_code=204, response_class=Response,
               summary="Remove a member (or leave)")
async def remove_member(cif: str, member_id: str, user: CurrentUser, deps: ServiceDeps) -> None:
    await handlers.remove_member(deps, user.user_id, cif, member_id)


@router.post("/companies/{cif}/discovery", response_model=DiscoveryOut,
             summary="Discover the CIFs the firm's certificate has SPV rights on")
async def discover(cif: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.discover_on_demand(deps, user.user_id, cif)


@router.post("/companies/{cif}/candidates", response_model=CandidatesUploadOut,
             summary="Upload a CSV of client CIFs to probe (owner/admin)",
             description=f"At most {MAX_CSV_BYTES // (1024 * 1024)} MiB and {MAX_CSV_ROWS} rows (20,000 CIFs and "
                         f"a header); a cell longer than {MAX_CSV_FIELD} characters or a file the CSV reader "
                         "cannot read is refused with 422 `malformed_csv`, too many rows with 422 `too_many_rows`.",
             openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {
                 "type": "string", "maxLength": MAX_CSV_BYTES}}}}})
async def upload_candidates(cif: str, request: Request, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("text/csv", "text/plain", "application/csv", "application/vnd.ms-excel"):
        raise AppError("Send the client list as text/csv.", code="unsupported_media_type", status=415)
    raw = await request.body()
    if len(raw) > MAX_CSV_BYTES:
        raise AppError("The CSV is larger than 2 MB.", code="payload_too_large", status=413)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1250", errors="replace")
    return await handlers.upload_candidates(deps, user.user_id, cif, text)


@router.get("/companies/{cif}/candidates", response_model=CandidatesOut, summary="CIFs uploaded for probing")
async def list_candidates(cif: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.list_candidates(deps, user.user_id, cif)


@router.get("/companies/{cif}/discovered", response_model=DiscoveredOut,
            summary="Companies the firm's certificate has rights on, with registry data and whether invited or "
                    "collaborating")
async def list_discovered(cif: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.list_discovered(deps, user.user_id, cif)


@router.get("/companies/{cif}/portfolio-status", response_model=PortfolioStatusOut, response_model_exclude_unset=True,
            summary="What blocks the firm's portfolio")
async def portfolio_status(cif: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.portfolio_status(deps, user.user_id, cif)


@router.get("/companies/{cif}/collaborations", response_model=CollaborationsOut,
            summary="Collaborations of the company (as firm or client)")
async def list_collaborations(cif: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return {"cif": cif, "collaborations": await handlers.list_collaborations(deps, user.user_id, cif)}


@router.patch("/companies/{cif}/collaborations/{firm_cif}", response_model=CollaborationOut,
              summary="The client decides what the accounting firm may do in its name (verified owner/admin)")
async def set_collaboration_permissions(cif: str, firm_cif: str, body: CollaborationPermissions, user: CurrentUser,
                                        deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.set_collaboration_permissions(deps, user.user_id, cif, firm_cif, body.may_file)


@router.post("/companies/{cif}/collaborations/{other_cif}/end", response_model=CollaborationOut,
             summary="End a collaboration (either side)")
async def end_collaboration(cif: str, other_cif: str, user: CurrentUser, deps: ServiceDeps,
                            body: EndCollaboration | None = None) -> dict[str, Any]:
    reason = body.reason if body else ""
    return await handlers.end_collaboration(deps, user.user_id, cif, other_cif, reason)
