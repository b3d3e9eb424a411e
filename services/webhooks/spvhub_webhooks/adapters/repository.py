"""SQL for the webhooks tables: endpoints, deliveries (written from events, leased by the sender, requeued by
replay) and the attempt log; and the one access question of this service, whether a tenant may see a company."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

from spvhub_common.access import MANAGERS
from sqlalchemy import and_, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from spvhub_webhooks.adapters.orm import access_grants, attempts, deliveries, endpoints

R = TypeVar("R")


def _record(cls: type[R], row: Any) -> R:
    """A typed record from a result row (only the record's own fields are read)."""
    m = row._mapping
    return cls(**{f.name: m[f.name] for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Endpoint:
    id: str
    tenant_cif: str
    url: str
    description: str
    event_types: list[str]
    cifs: list[str]
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    last_error: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    secret_rotated_at: datetime | None


@dataclass(frozen=True)
class Subscriber:
    """An endpoint that asked for an event type about at least one of the event's companies."""

    id: str
    tenant_cif: str
    cifs: list[str]
    enabled: bool


@dataclass(frozen=True)
class Delivery:
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    cif: str
    event_time: datetime
    webhook_id: str
    payload: bytes
    status: str
    attempts: int
    next_attempt_at: datetime
    retry_until: datetime
    lease_until: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_latency_ms: int | None
    created_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class Leased:
    """A due delivery leased by this sender, with what sending it needs."""

    id: str
    endpoint_id: str
    webhook_id: str
    payload: bytes
    attempts: int
    retry_until: datetime
    lease_until: datetime
    url: str
    secret_enc: bytes


@dataclass(frozen=True)
class Attempt:
    attempt: int
    at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    response_excerpt: str | None


@dataclass(frozen=True)
class Failing:
    """An endpoint after a failed attempt was recorded."""

    failing_since: datetime
    enabled: bool
    tenant_cif: str
    url: str


# ---------------------------------------------------------------- who may see what

# A tenant (company T) may see company X when one of T's verified owners or administrators holds a verified grant
# on X as T's own person (X = T) or through T's active collaboration with X (via_firm_cif = T). Read from the access
# read model at the moment a delivery is created, so a collaboration that ended stops deliveries at once.
_TENANT_SEES = text("""
    SELECT 1 FROM access_grants m JOIN access_grants g ON g.user_id = m.user_id
    WHERE m.cif = :tenant AND m.via_firm_cif IS NULL AND m.verified AND m.role IN ('owner', 'admin')
      AND g.cif = :cif AND g.verified
      AND ((g.cif = :tenant AND g.via_firm_cif IS NULL) OR g.via_firm_cif = :tenant)
    LIMIT 1""")


async def tenant_sees(session: AsyncSession, tenant: str, cif: str) -> bool:
    return (await session.execute(_TENANT_SEES, {"tenant": tenant, "cif": cif})).first() is not None


async def managed_tenants(session: AsyncSession, user_id: str) -> list[str]:
    """The companies whose verified owner or administrator the user is, as their own person."""
    rows = await session.execute(select(access_grants.c.cif).where(
        access_grants.c.user_id == user_id, access_grants.c.verified.is_(True),
        access_grants.c.via_firm_cif.is_(None), access_grants.c.role.in_(MANAGERS)))
    return [r[0] for r in rows]


# ---------------------------------------------------------------- endpoints

async def get_endpoint(session: AsyncSession, endpoint_id: str) -> Endpoint | None:
    row = (await session.execute(select(endpoints).where(endpoints.c.id == endpoint_id))).first()
    return None if row is None else _record(Endpoint, row)


async def count_endpoints(session: AsyncSession, tenant: str) -> int:
    return int((await session.execute(select(func.count()).select_from(endpoints)
                                      .where(endpoints.c.tenant_cif == tenant))).scalar_one())


async def add_endpoint(session: AsyncSession, *, endpoint_id: str, tenant_cif: str, url: str, description: str,
                       event_types: list[str], cifs: list[str], secret_enc: bytes, created_by: str,
                       now: datetime) -> None:
    await session.execute(insert(endpoints).values(
        id=endpoint_id, tenant_cif=tenant_cif, url=url, description=description, event_types=event_types,
        cifs=cifs, secret_enc=secret_enc, created_by=created_by, created_at=now, updated_at=now))


async def endpoints_of(session: AsyncSession, tenants: Sequence[str]) -> list[Endpoint]:
    rows = await session.execute(select(endpoints).where(endpoints.c.tenant_cif.in_(tenants))
                                 .order_by(endpoints.c.tenant_cif, endpoints.c.created_at))
    return [_record(Endpoint, r) for r in rows]


async def update_endpoint(session: AsyncSession, endpoint_id: str, **values: Any) -> None:
    await session.execute(update(endpoints).where(endpoints.c.id == endpoint_id).values(**values))


async def delete_endpoint(session: AsyncSession, endpoint_id: str) -> None:
    await session.execute(delete(endpoints).where(endpoints.c.id == endpoint_id))


async def subscribers(session: AsyncSession, event_type: str, cifs: list[str]) -> list[Subscriber]:
    rows = await session.execute(select(endpoints.c.id, endpoints.c.tenant_cif, endpoints.c.cifs, endpoints.c.enabled)
                                 .where(endpoints.c.event_types.any(event_type), endpoints.c.cifs.overlap(cifs)))
    return [_record(Subscriber, r) for r in rows]


async def clear_failing(session: AsyncSession, endpoint_id: str) -> None:
    await session.execute(update(endpoints).where(endpoints.c.id == endpoint_id,
                                                  endpoints.c.failing_since.is_not(None))
                          .values(failing_since=None, last_error=None))


async def mark_failing(session: AsyncSession, endpoint_id: str, now: datetime, error: str | None) -> Failing | None:
    """Record a failure (the first one since the last success starts `failing_since`)."""
    row = (await session.execute(update(endpoints).where(endpoints.c.id == endpoint_id).values(
        failing_since=func.coalesce(endpoints.c.failing_since, now), last_error=error,
    ).returning(endpoints.c.failing_since, endpoints.c.enabled, endpoints.c.tenant_cif, endpoints.c.url))).first()
    return None if row is None else _record(Failing, row)


# ---------------------------------------------------------------- deliveries

async def add_delivery(session: AsyncSession, *, delivery_id: str, endpoint_id: str, event_id: str, event_type: str,
                       cif: str, event_time: datetime, webhook_id: str, payload: bytes, status: str,
                       now: datetime, retry_until: datetime) -> bool:
    """False when the endpoint already has a delivery of this event."""
    res = await session.execute(pg_insert(deliveries).values(
        id=delivery_id, endpoint_id=endpoint_id, event_id=event_id, event_type=event_type, cif=cif,
        event_time=event_time, webhook_id=webhook_id, payload=payload, status=status, next_attempt_at=now,
        retry_until=retry_until, created_at=now,
    ).on_conflict_do_nothing(constraint="uq_deliveries_endpoint_event").returning(deliveries.c.id))
    return res.first() is not None


_LEASE = text("""
    UPDATE deliveries d SET lease_until = :lease
    FROM endpoints e
    WHERE e.id = d.endpoint_id AND d.id IN (
        SELECT dd.id FROM deliveries dd JOIN endpoints ee ON ee.id = dd.endpoint_id
        WHERE dd.status = 'pending' AND dd.next_attempt_at <= :now AND ee.enabled
          AND (dd.lease_until IS NULL OR dd.lease_until < :now)
        ORDER BY dd.next_attempt_at LIMIT :n FOR UPDATE OF dd SKIP LOCKED)
    RETURNING d.id, d.endpoint_id, d.webhook_id, d.payload, d.attempts, d.retry_until, d.lease_until,
              e.url, e.secret_enc""")


async def lease_due(session: AsyncSession, now: datetime, lease: datetime, n: int) -> list[Leased]:
    """Lease up to `n` due deliveries of enabled endpoints (SKIP LOCKED: replicas share the work)."""
    rows = (await session.execute(_LEASE, {"lease": lease, "now": now, "n": n})).all()
    return [_record(Leased, r) for r in rows]


async def finish_attempt(session: AsyncSession, delivery_id: str, leased_until: datetime,
                         values: dict[str, Any]) -> bool:
    """Apply an attempt's outcome only while our lease holds; False when someone else leased the row since."""
    done = (await session.execute(update(deliveries).where(deliveries.c.id == delivery_id,
                                                           deliveries.c.lease_until == leased_until)
                                  .values(**values).returning(deliveries.c.id))).first()
    return done is not None


async def add_attempt(session: AsyncSession, *, delivery_id: str, endpoint_id: str, attempt: int, at: datetime,
                      status_code: int | None, latency_ms: int, error: str | None,
                      response_excerpt: str | None) -> None:
    await session.execute(insert(attempts).values(
        delivery_id=delivery_id, endpoint_id=endpoint_id, attempt=attempt, at=at, status_code=status_code,
        latency_ms=latency_ms, error=error, response_excerpt=response_excerpt))


async def resume_pending(session: AsyncSession, endpoint_id: str, now: datetime, retry_until: datetime) -> None:
    """What waited while the endpoint was off becomes due now, with a fresh retry window."""
    await session.execute(update(deliveries).where(deliveries.c.endpoint_id == endpoint_id,
                                                   deliveries.c.status == "pending").values(
        next_attempt_at=now, lease_until=None, retry_until=retry_until))


async def deliveries_page(session: AsyncSession, endpoint_id: str, *, status: str | None,
                          after: tuple[datetime, str] | None, limit: int) -> list[Delivery]:
    """Newest first; `after` is the (created_at, id) of the last row of the previous page."""
    q = select(deliveries).where(deliveries.c.endpoint_id == endpoint_id)
    if status:
        q = q.where(deliveries.c.status == status)
    if after:
        at, did = after
        q = q.where(or_(deliveries.c.created_at < at, and_(deliveries.c.created_at == at, deliveries.c.id < did)))
    rows = await session.execute(q.order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc()).limit(limit))
    return [_record(Delivery, r) for r in rows]


async def get_delivery(session: AsyncSession, endpoint_id: str, delivery_id: str) -> Delivery | None:
    row = (await session.execute(select(deliveries).where(deliveries.c.id == delivery_id,
                                                          deliveries.c.endpoint_id == endpoint_id))).first()
    return None if row is None else _record(Delivery, row)


async def attempts_of(session: AsyncSession, delivery_id: str) -> list[Attempt]:
    rows = await session.execute(select(attempts).where(attempts.c.delivery_id == delivery_id)
                                 .order_by(attempts.c.id))
    return [_record(Attempt, r) for r in rows]


async def requeue_one(session: AsyncSession, endpoint_id: str, delivery_id: str, **values: Any) -> Delivery | None:
    row = (await session.execute(update(deliveries).where(deliveries.c.id == delivery_id,
                                                          deliveries.c.endpoint_id == endpoint_id)
                                 .values(**values).returning(*deliveries.c))).first()
    return None if row is None else _record(Delivery, row)


async def replay_candidates(session: AsyncSession, endpoint_id: str, since: datetime, until: datetime, *,
                            only_failed: bool, limit: int) -> list[str]:
    """Ids of the deliveries of events in [since, until): those not delivered, or every one not pending."""
    q = select(deliveries.c.id).where(deliveries.c.endpoint_id == endpoint_id,
                                      deliveries.c.event_time >= since, deliveries.c.event_time < until)
    q = q.where(deliveries.c.status.in_(("failed", "skipped"))) if only_failed else q.where(
        deliveries.c.status != "pending")
    return [r[0] for r in await session.execute(q.order_by(deliveries.c.event_time).limit(limit))]


async def requeue(session: AsyncSession, ids: Sequence[str], **values: Any) -> None:
    await session.execute(update(deliveries).where(deliveries.c.id.in_(ids)).values(**values))
