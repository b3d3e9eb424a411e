"""HTTP API of the webhooks service: request -> handler; no SQL, no business rules."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field
from spvhub_common.http import app_deps
from spvhub_common.paging import Page
from spvhub_common.security import CurrentUser

from spvhub_webhooks import handlers
from spvhub_webhooks.handlers import Deps

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


ServiceDeps = Annotated[Deps, Depends(app_deps)]


class EventTypeOut(BaseModel):
    type: str = Field(..., examples=["ro.spvhub.efactura.invoice-downloaded.v1"])
    topic: str
    description: str


class EndpointIn(BaseModel):
    tenant_cif: str = Field(..., max_length=20, description="the company that owns the endpoint (you must be its "
                                                            "verified owner or administrator)")
    url: str = Field(..., max_length=2000, examples=["https://erp.example.ro/hooks/spvhub"])
    event_types: list[str] = Field(..., min_length=1, max_length=50,
                                   description="CloudEvents types from GET /api/webhooks/event-types")
    cifs: list[str] | None = Field(None, max_length=1000,
                                   description="companies covered: the tenant and/or its collaborating clients "
                                               "(default: the tenant only)")
    description: str = Field("", max_length=500)


class EndpointPatch(BaseModel):
    url: str | None = Field(None, max_length=2000)
    event_types: list[str] | None = Field(None, min_length=1, max_length=50)
    cifs: list[str] | None = Field(None, min_length=1, max_length=1000)
    description: str | None = Field(None, max_length=500)
    enabled: bool | None = Field(None, description="false pauses deliveries; true resumes the pending ones")


class EndpointOut(BaseModel):
    id: str
    tenant_cif: str
    url: str
    description: str
    event_types: list[str]
    cifs: list[str]
    enabled: bool
    disabled_reason: Literal["manual", "failing"] | None
    disabled_at: datetime | None
    failing_since: datetime | None
    last_error: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    secret_rotated_at: datetime | None


class EndpointWithSecretOut(EndpointOut):
    secret: str = Field(..., description="whsec_<base64>: shown only in this answer; verify signatures with it")


DeliveryStatus = Literal["pending", "delivered", "failed", "skipped"]


class DeliveryOut(BaseModel):
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    cif: str
    event_time: datetime
    webhook_id: str = Field(..., description="the `webhook-id` header: the same on every attempt and replay")
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_latency_ms: int | None
    created_at: datetime
    delivered_at: datetime | None


class AttemptOut(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    response_excerpt: str | None


class DeliveryDetailOut(DeliveryOut):
    payload: dict[str, Any] = Field(..., description="the CloudEvents JSON that is sent")
    attempt_log: list[AttemptOut]


class ReplayRangeIn(BaseModel):
    since: datetime = Field(..., description="events at or after this time")
    until: datetime = Field(..., description="events before this time")
    only_failed: bool = Field(False, description="only deliveries that failed or were skipped while disabled")


class ReplayRangeOut(BaseModel):
    replayed: int


@router.get("/event-types", response_model=list[EventTypeOut], summary="The event types an endpoint can receive")
async def list_event_types(_user: CurrentUser) -> list[dict[str, str]]:
    return handlers.event_types()


@router.post("/endpoints", response_model=EndpointWithSecretOut, status_code=201,
             summary="Register an endpoint (its secret is shown only in this answer)")
async def create(body: EndpointIn, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.create_endpoint(deps, user, tenant_cif=body.tenant_cif, url=body.url,
                                          event_types=body.event_types, cifs=body.cifs, description=body.description)


@router.get("/endpoints", response_model=list[EndpointOut],
            summary="Endpoints of the companies you manage (or of one)")
async def list_all(user: CurrentUser, deps: ServiceDeps,
                   tenant_cif: str | None = Query(None, max_length=20)) -> list[dict[str, Any]]:
    return await handlers.list_endpoints(deps, user, tenant_cif)


@router.get("/endpoints/{endpoint_id}", response_model=EndpointOut)
async def get_one(endpoint_id: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.get_endpoint(deps, user, endpoint_id)


@router.patch("/endpoints/{endpoint_id}", response_model=EndpointOut,
              summary="Change the URL, event types, companies, description; pause or resume")
async def patch(endpoint_id: str, body: EndpointPatch, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.update_endpoint(deps, user, endpoint_id, **body.model_dump(exclude_unset=True))


@router.post("/endpoints/{endpoint_id}/rotate-secret", response_model=EndpointWithSecretOut,
             summary="A new secret, effective at once (shown only in this answer)")
async def rotate(endpoint_id: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.rotate_secret(deps, user, endpoint_id)


@router.delete("/endpoints/{endpoint_id}", status_code=204, response_class=Response,
               summary="Delete the endpoint and its delivery log")
async def remove(endpoint_id: str, user: CurrentUser, deps: ServiceDeps) -> Response:
    await handlers.delete_endpoint(deps, user, endpoint_id)
    return Response(status_code=204)


@router.get("/endpoints/{endpoint_id}/deliveries", response_model=Page[DeliveryOut],
            summary="The delivery log, newest first (status, attempts, last status code and latency)")
async def deliveries(endpoint_id: str, user: CurrentUser, deps: ServiceDeps, status: DeliveryStatus | None = None,
                     limit: int = Query(50, ge=1, le=200),
                     cursor: str | None = Query(None, max_length=300,
                                                description="`next_cursor` of the previous page"),
                     ) -> dict[str, Any]:
    return await handlers.list_deliveries(deps, user, endpoint_id, status=status, limit=limit, cursor=cursor)


@router.get("/endpoints/{endpoint_id}/deliveries/{delivery_id}", response_model=DeliveryDetailOut,
            summary="One delivery with its payload and every attempt")
async def delivery(endpoint_id: str, delivery_id: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.get_delivery(deps, user, endpoint_id, delivery_id)


@router.post("/endpoints/{endpoint_id}/deliveries/{delivery_id}/replay", response_model=DeliveryOut,
             status_code=202, summary="Send one delivery again (same webhook-id)")
async def replay(endpoint_id: str, delivery_id: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.replay_one(deps, user, endpoint_id, delivery_id)


@router.post("/endpoints/{endpoint_id}/replay", response_model=ReplayRangeOut, status_code=202,
             summary="Send again every delivery of events in a time range")
async def replay_range(endpoint_id: str, body: ReplayRangeIn, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.replay_range(deps, user, endpoint_id, since=body.since, until=body.until,
                                       only_failed=body.only_failed)
