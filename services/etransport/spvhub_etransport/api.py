"""HTTP API of the etransport service: request -> handler; no SQL, no business rules.
Every route is scoped by the caller's rights (access read model): only transports of carriers they may see."""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, PlainSerializer
from spvhub_common.http import app_deps
from spvhub_common.paging import Page
from spvhub_common.security import CurrentUser

from spvhub_etransport import handlers
from spvhub_etransport.handlers import Deps

router = APIRouter(prefix="/api/etransport", tags=["etransport"])


ServiceDeps = Annotated[Deps, Depends(app_deps)]

# Times are written as Python's isoformat (`+00:00`), as this API always has, not pydantic's `Z`.
Timestamp = Annotated[datetime, PlainSerializer(lambda v: v.isoformat(), return_type=str, when_used="json")]


class PartnerOut(BaseModel):
    country: str | None
    code: str | None
    name: str | None


class TransportOut(BaseModel):
    uit: str
    carrier_cif: str
    carrier_name: str | None
    state: str
    declarant_cif: str | None
    declarant_name: str | None
    declarant_ref: str | None
    operation_type: str | None
    transport_date: date | None
    uit_expires_on: date | None
    uit_expires_at: Timestamp | None
    expiry_source: str | None
    partner: PartnerOut | None
    vehicle: str | None
    trailer1: str | None
    trailer2: str | None
    route_start: str | None
    route_end: str | None
    confirmation: Any
    vehicle_change_count: int
    first_seen_at: Timestamp
    last_seen_at: Timestamp
    last_seen_in_anaf_info_at: Timestamp | None
    deleted_at: Timestamp | None
    expired_at: Timestamp | None


class HistoryOut(BaseModel):
    version: int
    kind: str
    source: str
    changes: Any
    observed_at: Timestamp


class EmittedOut(BaseModel):
    kind: str
    version: int
    emitted_at: Timestamp


class TransportDetailOut(TransportOut):
    declared_vehicle: str | None
    declared_trailer1: str | None
    declared_trailer2: str | None
    vehicle_changes: Any
    route_start_detail: Any
    route_end_detail: Any
    documents: str | None
    goods: Any
    sources: list[str]
    version: int
    plates: list[str]
    history: list[HistoryOut]
    events: list[EmittedOut]


class SyncedThroughOut(BaseModel):
    kind: Literal["own", "accounting_firm"]
    firm_cif: str | None
    active: bool


class CompanyOut(BaseModel):
    cif: str
    status: str
    status_reason: str | None
    synced_through: SyncedThroughOut | None
    last_info_poll_at: Timestamp | None
    last_lista_poll_at: Timestamp | None
    last_success_at: Timestamp | None
    next_info_due: Timestamp | None
    last_error: str | None
    last_error_at: Timestamp | None
    consecutive_errors: int


class CompaniesOut(BaseModel):
    items: list[CompanyOut]


class PollSummaryOut(BaseModel):
    cif: str
    polled_info: bool
    polled_lista: bool
    seen: int
    created: int
    updated: int
    deleted: int
    expired: int
    probes: int
    events: int
    error: str | None
    skipped: str | None


@router.get("/transports", response_model=Page[TransportOut],
            summary="Transports where the caller's companies are the carrier: newest transport date first, "
                    "a page at a time (`next_cursor` -> `cursor`), with how many match in all (`total`)")
async def list_transports(
    user: CurrentUser, deps: ServiceDeps,
    company: Annotated[str | None, Query(description="carrier CIF (with or without RO)")] = None,
    state: Literal["active", "expired", "deleted"] | None = None,
    vehicle: Annotated[str | None, Query(description="a plate: declared, current or changed vehicle/trailer")] = None,
    declarant: Annotated[str | None, Query(description="declarant CIF")] = None,
    date_from: Annotated[date | None, Query(description="transport date from (inclusive)")] = None,
    date_to: Annotated[date | None, Query(description="transport date to (inclusive)")] = None,
    limit: Annotated[int | None, Query(ge=1, le=500, description="transports per page (default 50)")] = None,
    cursor: Annotated[str | None, Query(max_length=300, description="`next_cursor` of the previous page")] = None,
    page_size: Annotated[int | None, Query(ge=1, le=500, deprecated=True, description="older name of `limit`")
                         ] = None,
) -> dict[str, Any]:
    return await handlers.list_transports(deps, user.user_id, company=company, state=state, vehicle=vehicle,
                                          declarant=declarant, date_from=date_from, date_to=date_to, cursor=cursor,
                                          limit=limit or page_size or 50)


@router.get("/transports/{uit}", response_model=TransportDetailOut,
            summary="One transport with its vehicle changes, history and emitted events")
async def get_transport(user: CurrentUser, deps: ServiceDeps, uit: str,
                        carrier: Annotated[str | None, Query(description="carrier CIF, if the UIT moved")] = None
                        ) -> dict[str, Any]:
    return await handlers.get_transport(deps, user.user_id, uit, carrier)


@router.get("/companies", response_model=CompaniesOut, summary="Carriers the caller can see, with their polling health")
async def list_companies(user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return {"items": await handlers.list_companies(deps, user.user_id)}


@router.post("/companies/{cif}/poll", response_model=PollSummaryOut,
             summary="Poll ANAF now for this carrier (info, and lista with ?lista=true)")
async def poll_now(user: CurrentUser, deps: ServiceDeps, cif: str, lista: bool = False) -> dict[str, Any]:
    summary = await handlers.poll_now(deps, user.user_id, cif, lista=lista)
    return summary.as_dict()
