"""Use cases of the webhooks service: endpoints (register, list, change, rotate the secret, delete), deliveries
written from consumed events, the sender that posts them under a lease, the delivery log and replay."""
from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from spvhub_common.access import MANAGERS, grant_of, require_grant, verified_users
from spvhub_common.anaf.models import normalize_cif
from spvhub_common.crypto import SecretBox
from spvhub_common.errors import AppError, Conflict, NotFound
from spvhub_common.events import CloudEvent, Event, encode
from spvhub_common.events.webhooks import EndpointDisabled
from spvhub_common.logging import get_logger
from spvhub_common.security import Principal
from spvhub_common.uow import SqlUnitOfWork
from sqlalchemy import and_, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from spvhub_webhooks import domain
from spvhub_webhooks.adapters.orm import access_grants, attempts, deliveries, endpoints
from spvhub_webhooks.adapters.sender import SendResult, WebhookSender
from spvhub_webhooks.settings import Settings

log = get_logger(__name__)


@dataclass
class Deps:
    uow: Callable[[], SqlUnitOfWork]
    box: SecretBox
    sender: WebhookSender
    settings: Settings
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


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


# ---------------------------------------------------------------- errors

def endpoint_not_found(endpoint_id: str) -> NotFound:
    return NotFound(f"No webhook endpoint {endpoint_id}.", code="webhook_endpoint_not_found",
                    details={"endpoint_id": endpoint_id},
                    messages={"ro": f"Nu există endpoint-ul de webhook {endpoint_id}."})


def delivery_not_found(delivery_id: str) -> NotFound:
    return NotFound(f"No delivery {delivery_id} for this endpoint.", code="webhook_delivery_not_found",
                    details={"delivery_id": delivery_id},
                    messages={"ro": f"Nu există livrarea {delivery_id} pentru acest endpoint."})


def _bad(code: str, en: str, ro: str, **details: Any) -> AppError:
    return AppError(en, code=code, status=422, details=details, messages={"ro": ro})


# ---------------------------------------------------------------- endpoints

def _out(row: Any) -> dict[str, Any]:
    return {"id": row.id, "tenant_cif": row.tenant_cif, "url": row.url, "description": row.description,
            "event_types": list(row.event_types), "cifs": list(row.cifs), "enabled": row.enabled,
            "disabled_reason": row.disabled_reason, "disabled_at": row.disabled_at,
            "failing_since": row.failing_since, "last_error": row.last_error, "created_by": row.created_by,
            "created_at": row.created_at, "updated_at": row.updated_at, "secret_rotated_at": row.secret_rotated_at}


async def _check_target(deps: Deps, url: str) -> None:
    """Shape (scheme, literal addresses) always; outside dev/test also every address the host resolves to."""
    _scheme, host, port = domain.check_url_shape(url, strict=deps.settings.strict_targets)
    if not deps.settings.strict_targets:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=0)
    except (OSError, UnicodeError) as exc:
        raise domain.target_refused(url, "the host name does not resolve") from exc
    addrs = {str(i[4][0]) for i in infos}
    if not addrs or not all(domain.address_allowed(a) for a in addrs):
        raise domain.target_refused(url, "a private, loopback or link-local address")


async def _check_subscription(deps: Deps, session: AsyncSession, tenant: str, event_types: list[str],
                              cifs: list[str]) -> tuple[list[str], list[str]]:
    types = sorted(set(event_types))
    unknown = domain.unknown_event_types(types)
    if unknown or not types:
        raise _bad("unknown_event_type", f"Unknown or missing event types: {', '.join(unknown) or '(none)'}; see "
                   "GET /api/webhooks/event-types.", f"Tipuri de evenimente necunoscute sau lipsă: "
                   f"{', '.join(unknown) or '(niciunul)'}; vedeți GET /api/webhooks/event-types.", unknown=unknown)
    norm = sorted({normalize_cif(c) for c in cifs})
    if not norm or len(norm) > deps.settings.max_endpoint_cifs or not all(c.isascii() and c.isdigit() and len(c) <= 10
                                                                             for c in norm):
        raise _bad("invalid_cifs", f"Give between 1 and {deps.settings.max_endpoint_cifs} valid CIFs.",
                   f"Indicați între 1 și {deps.settings.max_endpoint_cifs} CIF-uri valide.")
    unseen = [c for c in norm if not await tenant_sees(session, tenant, c)]
    if unseen:
        raise AppError(f"Company {tenant} may not receive events of: {', '.join(unseen)} (only itself and the "
                       "clients in an active collaboration with it, once verified).", code="no_access_to_company",
                       status=403, details={"cifs": unseen},
                       messages={"ro": f"Compania {tenant} nu poate primi evenimentele companiilor: "
                                       f"{', '.join(unseen)} (doar pe ale ei și ale clienților cu care are o "
                                       "colaborare activă, după verificare)."})
    return types, norm


async def _manage(session: AsyncSession, user: Principal, endpoint_id: str) -> Any:
    """The endpoint, if the caller is a verified owner or administrator of its tenant; 404 for anyone else who
    has nothing to do with the tenant (an id reveals nothing), 403 for the tenant's other people."""
    row = (await session.execute(select(endpoints).where(endpoints.c.id == endpoint_id))).first()
    if row is None or await grant_of(session, access_grants, user.user_id, row.tenant_cif) is None:
        raise endpoint_not_found(endpoint_id)
    await require_grant(session, access_grants, user.user_id, row.tenant_cif, roles=MANAGERS, direct_only=True)
    return row


async def create_endpoint(deps: Deps, user: Principal, *, tenant_cif: str, url: str, event_types: list[str],
                          cifs: list[str] | None, description: str) -> dict[str, Any]:
    """Register an endpoint; the answer carries its secret, shown this once (stored encrypted)."""
    tenant = normalize_cif(tenant_cif)
    await _check_target(deps, url)
    async with deps.uow() as uow:
        s = uow.session
        await require_grant(s, access_grants, user.user_id, tenant, roles=MANAGERS, direct_only=True)
        types, norm = await _check_subscription(deps, s, tenant, event_types, cifs or [tenant])
        count = (await s.execute(select(func.count()).select_from(endpoints)
                                 .where(endpoints.c.tenant_cif == tenant))).scalar_one()
        if count >= deps.settings.max_endpoints_per_tenant:
            raise Conflict(f"Company {tenant} already has {count} webhook endpoints, the most allowed.",
                           code="too_many_endpoints", details={"max": deps.settings.max_endpoints_per_tenant},
                           messages={"ro": f"Compania {tenant} are deja {count} endpoint-uri de webhook, cât se "
                                           "permite."})
        eid, secret, now = str(uuid.uuid4()), domain.new_secret(), deps.now()
        await s.execute(insert(endpoints).values(
            id=eid, tenant_cif=tenant, url=url, description=description, event_types=types, cifs=norm,
            secret_enc=deps.box.encrypt(secret, aad=eid), created_by=user.user_id, created_at=now, updated_at=now))
        await uow.commit()
        row = (await s.execute(select(endpoints).where(endpoints.c.id == eid))).one()
    log.info("webhook endpoint registered", endpoint_id=eid, tenant_cif=tenant, event_types=len(types),
             cifs=len(norm))
    return {**_out(row), "secret": secret}


async def list_endpoints(deps: Deps, user: Principal, tenant_cif: str | None) -> list[dict[str, Any]]:
    async with deps.uow() as uow:
        s = uow.session
        if tenant_cif:
            tenant = normalize_cif(tenant_cif)
            await require_grant(s, access_grants, user.user_id, tenant, roles=MANAGERS, direct_only=True)
            tenants = [tenant]
        else:
            tenants = [r[0] for r in await s.execute(select(access_grants.c.cif).where(
                access_grants.c.user_id == user.user_id, access_grants.c.verified.is_(True),
                access_grants.c.via_firm_cif.is_(None), access_grants.c.role.in_(MANAGERS)))]
        rows = await s.execute(select(endpoints).where(endpoints.c.tenant_cif.in_(tenants))
                               .order_by(endpoints.c.tenant_cif, endpoints.c.created_at))
        return [_out(r) for r in rows]


async def get_endpoint(deps: Deps, user: Principal, endpoint_id: str) -> dict[str, Any]:
    async with deps.uow() as uow:
        return _out(await _manage(uow.session, user, endpoint_id))


async def update_endpoint(deps: Deps, user: Principal, endpoint_id: str, *, url: str | None = None,
                          event_types: list[str] | None = None, cifs: list[str] | None = None,
                          description: str | None = None, enabled: bool | None = None) -> dict[str, Any]:
    if url is not None:
        await _check_target(deps, url)
    async with deps.uow() as uow:
        s = uow.session
        row = await _manage(s, user, endpoint_id)
        now = deps.now()
        values: dict[str, Any] = {"updated_at": now}
        if url is not None:
            values["url"] = url
        if description is not None:
            values["description"] = description
        if event_types is not None or cifs is not None:
            types, norm = await _check_subscription(
                deps, s, row.tenant_cif, event_types if event_types is not None else list(row.event_types),
                cifs if cifs is not None else list(row.cifs))
            values.update(event_types=types, cifs=norm)
        if enabled is True and not row.enabled:
            values.update(enabled=True, disabled_reason=None, disabled_at=None, failing_since=None)
            # what waited while it was off goes out now, with a fresh retry window
            await s.execute(update(deliveries).where(deliveries.c.endpoint_id == endpoint_id,
                                                     deliveries.c.status == "pending").values(
                next_attempt_at=now, lease_until=None,
                retry_until=now + timedelta(seconds=deps.settings.retry_window_seconds)))
        elif enabled is False and row.enabled:
            values.update(enabled=False, disabled_reason="manual", disabled_at=now)
        await s.execute(update(endpoints).where(endpoints.c.id == endpoint_id).values(**values))
        await uow.commit()
        return _out((await s.execute(select(endpoints).where(endpoints.c.id == endpoint_id))).one())


async def rotate_secret(deps: Deps, user: Principal, endpoint_id: str) -> dict[str, Any]:
    """A new secret at once (the old one stops signing); shown this once."""
    async with deps.uow() as uow:
        s = uow.session
        await _manage(s, user, endpoint_id)
        secret, now = domain.new_secret(), deps.now()
        await s.execute(update(endpoints).where(endpoints.c.id == endpoint_id).values(
            secret_enc=deps.box.encrypt(secret, aad=endpoint_id), secret_rotated_at=now, updated_at=now))
        await uow.commit()
        row = (await s.execute(select(endpoints).where(endpoints.c.id == endpoint_id))).one()
    log.info("webhook secret rotated", endpoint_id=endpoint_id)
    return {**_out(row), "secret": secret}


async def delete_endpoint(deps: Deps, user: Principal, endpoint_id: str) -> None:
    async with deps.uow() as uow:
        await _manage(uow.session, user, endpoint_id)
        await uow.session.execute(delete(endpoints).where(endpoints.c.id == endpoint_id))
        await uow.commit()


# ---------------------------------------------------------------- deliveries from events

async def on_event(ev: Event, env: CloudEvent, uow: SqlUnitOfWork, *, settings: Settings,
                   now: datetime | None = None) -> int:
    """One delivery row per endpoint that subscribed to this event type for one of the companies it is about and
    whose tenant may see that company now; written in the consumer's (inbox-claimed) transaction. An endpoint that
    is switched off gets its row as `skipped`: visible in its log and replayable, never sent by itself."""
    sub = domain.BY_CLASS[type(ev)]
    cifs = sub.cifs(ev)
    s = uow.session
    rows = (await s.execute(select(endpoints.c.id, endpoints.c.tenant_cif, endpoints.c.cifs, endpoints.c.enabled)
                            .where(endpoints.c.event_types.any(sub.type), endpoints.c.cifs.overlap(cifs)))).all()
    now = now or datetime.now(UTC)
    payload = encode(env)
    made = 0
    for ep in rows:
        about = None
        for c in cifs:
            if c in ep.cifs and await tenant_sees(s, ep.tenant_cif, c):
                about = c
                break
        if about is None:
            continue
        res = await s.execute(pg_insert(deliveries).values(
            id=str(uuid.uuid4()), endpoint_id=ep.id, event_id=env.id, event_type=env.type, cif=about,
            event_time=env.time, webhook_id=domain.webhook_id(env.id, ep.id), payload=payload,
            status="pending" if ep.enabled else "skipped", next_attempt_at=now,
            retry_until=now + timedelta(seconds=settings.retry_window_seconds), created_at=now,
        ).on_conflict_do_nothing(constraint="uq_deliveries_endpoint_event").returning(deliveries.c.id))
        made += res.first() is not None
    return made


# ---------------------------------------------------------------- the sender

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


async def send_due(deps: Deps) -> int:
    """Lease due deliveries (SKIP LOCKED: replicas share the work) and post them. A sender killed mid-way leaves
    its rows leased until `lease_until`; they are then sent again (at least once, same `webhook-id`)."""
    now = deps.now()
    lease = now + timedelta(seconds=deps.settings.lease_seconds)
    async with deps.uow() as uow:
        rows = (await uow.session.execute(_LEASE, {"lease": lease, "now": now, "n": deps.settings.send_batch})).all()
        await uow.session.commit()
    if not rows:
        return 0
    sem = asyncio.Semaphore(deps.settings.send_concurrency)

    async def one(row: Any) -> None:
        async with sem:
            try:
                await _send_one(deps, row)
            except Exception as exc:  # one bad row never stops the others; its lease brings it back
                log.exception("webhook delivery failed to record", delivery_id=row.id, error=str(exc)[:300])
    await asyncio.gather(*(one(r) for r in rows))
    return len(rows)


async def _send_one(deps: Deps, row: Any) -> None:
    secret = deps.box.decrypt(bytes(row.secret_enc), aad=row.endpoint_id)
    body = bytes(row.payload)
    at = deps.now()
    result = await deps.sender.send(row.url, body, domain.signed_headers(secret, row.webhook_id, at, body))
    await record_attempt(deps, row, result)


async def record_attempt(deps: Deps, row: Any, result: SendResult) -> None:
    st = deps.settings
    now = deps.now()
    n = int(row.attempts) + 1
    async with deps.uow() as uow:
        s = uow.session
        common = dict(attempts=n, lease_until=None, last_status_code=result.status_code, last_error=result.error,
                      last_latency_ms=result.latency_ms)
        if result.ok:
            values: dict[str, Any] = dict(status="delivered", delivered_at=now, **common)
        elif now >= row.retry_until:
            values = dict(status="failed", **common)
        else:
            values = dict(next_attempt_at=now + domain.next_delay(n, st.retry_base_seconds, st.retry_max_seconds),
                          **common)
        # only while our lease holds: a sender that outlived its lease leaves the row to whoever leased it next
        done = (await s.execute(update(deliveries).where(deliveries.c.id == row.id,
                                                         deliveries.c.lease_until == row.lease_until)
                                .values(**values).returning(deliveries.c.id))).first()
        if done is None:
            return
        await s.execute(insert(attempts).values(
            delivery_id=row.id, endpoint_id=row.endpoint_id, attempt=n, at=now, status_code=result.status_code,
            latency_ms=result.latency_ms, error=result.error, response_excerpt=result.body_excerpt or None))
        if result.ok:
            await s.execute(update(endpoints).where(endpoints.c.id == row.endpoint_id,
                                                    endpoints.c.failing_since.is_not(None))
                            .values(failing_since=None, last_error=None))
        else:
            ep = (await s.execute(update(endpoints).where(endpoints.c.id == row.endpoint_id).values(
                failing_since=func.coalesce(endpoints.c.failing_since, now), last_error=result.error,
            ).returning(endpoints.c.failing_since, endpoints.c.enabled, endpoints.c.tenant_cif,
                        endpoints.c.url))).first()
            if ep is not None and ep.enabled and now - ep.failing_since >= timedelta(seconds=st.disable_after_seconds):
                await s.execute(update(endpoints).where(endpoints.c.id == row.endpoint_id).values(
                    enabled=False, disabled_reason="failing", disabled_at=now, updated_at=now))
                owners = await verified_users(s, access_grants, ep.tenant_cif, direct_only=True, roles=MANAGERS)
                uow.publish(EndpointDisabled(endpoint_id=row.endpoint_id, tenant_cif=ep.tenant_cif, url=ep.url,
                                             failing_since=ep.failing_since, last_error=result.error or "",
                                             notify_user_ids=owners))
                log.warning("webhook endpoint disabled after failing", endpoint_id=row.endpoint_id,
                            failing_since=ep.failing_since.isoformat())
        await uow.commit()


# ---------------------------------------------------------------- delivery log and replay

def _delivery_out(r: Any) -> dict[str, Any]:
    return {"id": r.id, "endpoint_id": r.endpoint_id, "event_id": r.event_id, "event_type": r.event_type,
            "cif": r.cif, "event_time": r.event_time, "webhook_id": r.webhook_id, "status": r.status,
            "attempts": r.attempts, "next_attempt_at": r.next_attempt_at if r.status == "pending" else None,
            "last_status_code": r.last_status_code, "last_error": r.last_error, "last_latency_ms": r.last_latency_ms,
            "created_at": r.created_at, "delivered_at": r.delivered_at}


def _encode_cursor(at: datetime, did: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), did]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, did = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(at), str(did)
    except (ValueError, TypeError) as exc:
        raise _bad("invalid_cursor", "The cursor is not valid; start again without it.",
                   "Cursorul nu este valid; reluați fără el.") from exc


async def list_deliveries(deps: Deps, user: Principal, endpoint_id: str, *, status: str | None, limit: int,
                          cursor: str | None) -> dict[str, Any]:
    async with deps.uow() as uow:
        s = uow.session
        await _manage(s, user, endpoint_id)
        q = select(deliveries).where(deliveries.c.endpoint_id == endpoint_id)
        if status:
            q = q.where(deliveries.c.status == status)
        if cursor:
            at, did = _decode_cursor(cursor)
            q = q.where(or_(deliveries.c.created_at < at, and_(deliveries.c.created_at == at, deliveries.c.id < did)))
        rows = (await s.execute(q.order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc())
                                .limit(limit + 1))).all()
    items = [_delivery_out(r) for r in rows[:limit]]
    nxt = _encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return {"items": items, "next_cursor": nxt}


async def get_delivery(deps: Deps, user: Principal, endpoint_id: str, delivery_id: str) -> dict[str, Any]:
    async with deps.uow() as uow:
        s = uow.session
        await _manage(s, user, endpoint_id)
        r = (await s.execute(select(deliveries).where(deliveries.c.id == delivery_id,
                                                      deliveries.c.endpoint_id == endpoint_id))).first()
        if r is None:
            raise delivery_not_found(delivery_id)
        tries = (await s.execute(select(attempts).where(attempts.c.delivery_id == delivery_id)
                                 .order_by(attempts.c.id))).all()
    return {**_delivery_out(r), "payload": json.loads(bytes(r.payload)),
            "attempt_log": [{"attempt": a.attempt, "at": a.at, "status_code": a.status_code,
                             "latency_ms": a.latency_ms, "error": a.error, "response_excerpt": a.response_excerpt}
                            for a in tries]}


def _requeue(deps: Deps, now: datetime) -> dict[str, Any]:
    return dict(status="pending", next_attempt_at=now, lease_until=None,
                retry_until=now + timedelta(seconds=deps.settings.retry_window_seconds))


def _endpoint_off(endpoint_id: str) -> Conflict:
    return Conflict("The endpoint is disabled; enable it first (PATCH enabled=true), then replay.",
                    code="webhook_endpoint_disabled", details={"endpoint_id": endpoint_id},
                    messages={"ro": "Endpoint-ul este dezactivat; activați-l întâi (PATCH enabled=true), apoi "
                                    "retrimiteți."})


async def replay_one(deps: Deps, user: Principal, endpoint_id: str, delivery_id: str) -> dict[str, Any]:
    """Send one delivery again (same `webhook-id`, a fresh signature and retry window)."""
    async with deps.uow() as uow:
        s = uow.session
        ep = await _manage(s, user, endpoint_id)
        if not ep.enabled:
            raise _endpoint_off(endpoint_id)
        r = (await s.execute(update(deliveries).where(deliveries.c.id == delivery_id,
                                                      deliveries.c.endpoint_id == endpoint_id)
                             .values(**_requeue(deps, deps.now())).returning(*deliveries.c))).first()
        if r is None:
            raise delivery_not_found(delivery_id)
        await uow.commit()
    return _delivery_out(r)


async def replay_range(deps: Deps, user: Principal, endpoint_id: str, *, since: datetime, until: datetime,
                       only_failed: bool) -> dict[str, Any]:
    """Send again every delivery whose event happened in [since, until): all of them, or only those not delivered
    (failed, or skipped while the endpoint was off)."""
    # a time without a zone is read as UTC
    since, until = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (since, until))
    if until <= since:
        raise _bad("invalid_range", "`until` must be after `since`.", "`until` trebuie să fie după `since`.")
    async with deps.uow() as uow:
        s = uow.session
        ep = await _manage(s, user, endpoint_id)
        if not ep.enabled:
            raise _endpoint_off(endpoint_id)
        q = select(deliveries.c.id).where(deliveries.c.endpoint_id == endpoint_id,
                                          deliveries.c.event_time >= since, deliveries.c.event_time < until)
        q = q.where(deliveries.c.status.in_(("failed", "skipped"))) if only_failed else q.where(
            deliveries.c.status != "pending")
        ids = [r[0] for r in await s.execute(q.order_by(deliveries.c.event_time).limit(deps.settings.replay_max + 1))]
        if len(ids) > deps.settings.replay_max:
            raise _bad("replay_too_large", f"More than {deps.settings.replay_max} deliveries in the range; replay a "
                       "shorter range.", f"Peste {deps.settings.replay_max} livrări în interval; retrimiteți un "
                       "interval mai scurt.", max=deps.settings.replay_max)
        if ids:
            await s.execute(update(deliveries).where(deliveries.c.id.in_(ids)).values(**_requeue(deps, deps.now())))
        await uow.commit()
    return {"replayed": len(ids)}


def event_types() -> list[dict[str, str]]:
    return [{"type": s.type, "topic": s.cls.topic, "description": s.description} for s in domain.SUBSCRIBABLE]
