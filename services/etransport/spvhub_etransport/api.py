"""HTTP API of the etransport service: request -> command -> handler; no SQL, no business rules.
Every route is scoped by the caller's rights (access read model): only transports of carriers they may see."""
from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from spvhub_common.security import CurrentUser

from spvhub_etransport.handlers import EtransportService

router = APIRouter(prefix="/api/etransport", tags=["etransport"])


def get_service(request: Request) -> EtransportService:
    svc: EtransportService = request.app.state.etransport
    return svc


Service = Annotated[EtransportService, Depends(get_service)]


@router.get("/transports", summary="Transports where the caller's companies are the carrier")
async def list_transports(
    user: CurrentUser, svc: Service,
    company: Annotated[str | None, Query(description="carrier CIF (with or without RO)")] = None,
    state: Literal["active", "expired", "deleted"] | None = None,
    vehicle: Annotated[str | None, Query(description="a plate: declared, current or changed vehicle/trailer")] = None,
    declarant: Annotated[str | None, Query(description="declarant CIF")] = None,
    date_from: Annotated[date | None, Query(description="transport date from (inclusive)")] = None,
    date_to: Annotated[date | None, Query(description="transport date to (inclusive)")] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    return await svc.list_transports(user.user_id, company=company, state=state, vehicle=vehicle,
                                     declarant=declarant, date_from=date_from, date_to=date_to, page=page,
                                     page_size=page_size)


@router.get("/transports/{uit}", summary="One transport with its vehicle changes, history and emitted events")
async def get_transport(user: CurrentUser, svc: Service, uit: str,
                        carrier: Annotated[str | None, Query(description="carrier CIF, if the UIT moved")] = None
                        ) -> dict[str, Any]:
    return await svc.get_transport(user.user_id, uit, carrier)


@router.get("/companies", summary="Carriers the caller can see, with their polling health")
async def list_companies(user: CurrentUser, svc: Service) -> dict[str, Any]:
    return {"items": await svc.list_companies(user.user_id)}


@router.post("/companies/{cif}/poll", summary="Poll ANAF now for this carrier (info, and lista with ?lista=true)")
async def poll_now(user: CurrentUser, svc: Service, cif: str, lista: bool = False) -> dict[str, Any]:
    await svc.require_access(user.user_id, cif)
    summary = await svc.poll_now(cif, lista=lista)
    return summary.as_dict()
