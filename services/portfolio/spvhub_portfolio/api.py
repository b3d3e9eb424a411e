"""HTTP API of the portfolio service: request -> command -> handler; no SQL, no business rules.

Every route is scoped by the caller's rights on the CIF in its path (direct membership, or a firm user on an
active client); nothing takes a CIF on trust.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from spvhub_common.errors import AppError
from spvhub_common.security import CurrentUser
from spvhub_common.uow import SqlUnitOfWork

from spvhub_portfolio import handlers as h
from spvhub_portfolio.domain import MAX_CSV_FIELD, MAX_CSV_ROWS

router = APIRouter(prefix="/api/portfolio", tags=["portfolio"])

T = TypeVar("T")
MAX_CSV_BYTES = 2 * 1024 * 1024


async def _uow(request: Request) -> AsyncIterator[SqlUnitOfWork]:
    async with request.app.state.runtime.uow() as uow:
        yield uow


def _deps(request: Request) -> h.Deps:
    return request.app.state.portfolio_deps  # type: ignore[no-any-return]


Uow = Annotated[SqlUnitOfWork, Depends(_uow)]
PortfolioDeps = Annotated[h.Deps, Depends(_deps)]


async def _commit(uow: SqlUnitOfWork, fn: Callable[[], Awaitable[T]]) -> T:
    out = await fn()
    await uow.commit()
    return out


class RegisterCompany(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cif: str = Field(..., max_length=32, examples=["RO 14399840"], description="CIF with or without RO, spaces ok")


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


@router.post("/companies", status_code=201, summary="Register a company by CIF (the caller becomes owner)")
async def register_company(body: RegisterCompany, user: CurrentUser, uow: Uow, deps: PortfolioDeps,
                           response: Response) -> dict[str, Any]:
    company, created = await _commit(uow, lambda: h.register_company(uow, deps, user.user_id, body.cif))
    if not created:
        response.status_code = 200
    return company


@router.get("/registry/{cif}", summary="ANAF's public registry data for a CIF (registers nothing)")
async def registry_lookup(cif: str, user: CurrentUser, uow: Uow, deps: PortfolioDeps) -> dict[str, Any]:
    return await _commit(uow, lambda: h.registry_lookup(uow, deps, cif))


@router.get("/companies", summary="The caller's companies and the collaborating clients of their firms")
async def list_companies(user: CurrentUser, uow: Uow) -> dict[str, Any]:
    items = await h.list_companies(uow, user.user_id)
    return {"companies": items, "count": len(items)}


@router.get("/companies/{cif}", summary="One company the caller may see")
async def get_company(cif: str, user: CurrentUser, uow: Uow) -> dict[str, Any]:
    return await h.get_company(uow, user.user_id, cif)


@router.patch("/companies/{cif}", summary="Profile flags (owner/admin): provides accounting services")
async def patch_company(cif: str, body: PatchCompany, user: CurrentUser, uow: Uow,
                        deps: PortfolioDeps) -> dict[str, Any]:
    return await _commit(uow, lambda: h.update_company_profile(uow, deps, user.user_id, cif,
                                                               body.provides_accounting_services))


@router.get("/companies/{cif}/members", summary="Members and roles")
async def list_members(cif: str, user: CurrentUser, uow: Uow) -> dict[str, Any]:
    return {"cif": cif, "members": await h.list_members(uow, user.user_id, cif)}


@router.post("/companies/{cif}/members", status_code=201,
             summary="Add an existing platform user, by e-mail (verified owner/admin); the member is verified")
async def add_member(cif: str, body: AddMember, user: CurrentUser, uow: Uow, deps: PortfolioDeps) -> dict[str, Any]:
    return await _commit(uow, lambda: h.add_member(uow, deps, user.user_id, cif, body.email, body.role))


@router.put("/companies/{cif}/members/{member_id}",
            summary="Change a member's role, or approve a pending member with a role (verified owner/admin)")
async def set_member(cif: str, member_id: str, body: SetMember, user: CurrentUser, uow: Uow,
                     deps: PortfolioDeps) -> dict[str, Any]:
    if not member_id or len(member_id) > 64:
        raise AppError("member id must be 1-64 characters.", code="invalid_user_id", status=422)
    return await _commit(uow, lambda: h.set_member(uow, deps, user.user_id, cif, member_id, body.role))


@router.delete("/companies/{cif}/members/{member_id}", status_code=204, summary="Remove a member (or leave)")
async def remove_member(cif: str, member_id: str, user: CurrentUser, uow: Uow) -> Response:
    await _commit(uow, lambda: h.remove_member(uow, user.user_id, cif, member_id))
    return Response(status_code=204)


@router.post("/companies/{cif}/discovery", summary="Discover the CIFs the firm's certificate has SPV rights on")
async def discover(cif: str, user: CurrentUser, uow: Uow, deps: PortfolioDeps) -> dict[str, Any]:
    return await _commit(uow, lambda: h.discover_on_demand(uow, deps, user.user_id, cif))


@router.post("/companies/{cif}/candidates", summary="Upload a CSV of client CIFs to probe (owner/admin)",
             description=f"At most {MAX_CSV_BYTES // (1024 * 1024)} MiB and {MAX_CSV_ROWS} rows (20,000 CIFs and "
                         f"a header); a cell longer than {MAX_CSV_FIELD} characters or a file the CSV reader "
                         "cannot read is refused with 422 `malformed_csv`, too many rows with 422 `too_many_rows`.",
             openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {
                 "type": "string", "maxLength": MAX_CSV_BYTES}}}}})
async def upload_candidates(cif: str, request: Request, user: CurrentUser, uow: Uow) -> dict[str, Any]:
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
    return await _commit(uow, lambda: h.upload_candidates(uow, user.user_id, cif, text))


@router.get("/companies/{cif}/candidates", summary="CIFs uploaded for probing")
async def list_candidates(cif: str, user: CurrentUser, uow: Uow) -> dict[str, Any]:
    return await h.list_candidates(uow, user.user_id, cif)


@router.get("/companies/{cif}/discovered", summary="Companies the firm's certificate has rights on, with registry "
                                                     "data and whether invited or collaborating")
async def list_discovered(cif: str, user: CurrentUser, uow: Uow, deps: PortfolioDeps) -> dict[str, Any]:
    return await h.list_discovered(uow, deps, user.user_id, cif)


@router.get("/companies/{cif}/portfolio-status", summary="What blocks the firm's portfolio")
async def portfolio_status(cif: str, user: CurrentUser, uow: Uow) -> dict[str, Any]:
    return await h.portfolio_status(uow, user.user_id, cif)


@router.get("/companies/{cif}/collaborations", summary="Collaborations of the company (as firm or client)")
async def list_collaborations(cif: str, user: CurrentUser, uow: Uow) -> dict[str, Any]:
    return {"cif": cif, "collaborations": await h.list_collaborations(uow, user.user_id, cif)}


@router.patch("/companies/{cif}/collaborations/{firm_cif}",
              summary="The client decides what the accounting firm may do in its name (verified owner/admin)")
async def set_collaboration_permissions(cif: str, firm_cif: str, body: CollaborationPermissions, user: CurrentUser,
                                        uow: Uow) -> dict[str, Any]:
    return await _commit(uow, lambda: h.set_collaboration_permissions(uow, user.user_id, cif, firm_cif,
                                                                      body.may_file))


@router.post("/companies/{cif}/collaborations/{other_cif}/end", summary="End a collaboration (either side)")
async def end_collaboration(cif: str, other_cif: str, user: CurrentUser, uow: Uow, deps: PortfolioDeps,
                            body: EndCollaboration | None = None) -> dict[str, Any]:
    reason = body.reason if body else ""
    return await _commit(uow, lambda: h.end_collaboration(uow, deps, user.user_id, cif, other_cif, reason))
