"""Use cases of the webhooks service: endpoints (register, list, change, rotate the secret, delete), deliveries
written from consumed events, the sender that posts them under a lease, the delivery log and replay."""
from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from spvhub_common.access import MANAGERS, grant_of, require_grant, verified_users
from spvhub_common.clock import Clock, SystemClock
from spvhub_common.crypto import SecretBox
from spvhub_common.errors import AppError, Conflict, NotFound
from spvhub_common.events import CloudEvent, Event, encode
from spvhub_common.events.webhooks import EndpointDisabled
from spvhub_common.ids import InvalidTaxId
from spvhub_common.logging import get_logger
from spvhub_common.paging import decode_time_cursor, encode_cursor
from spvhub_common.pii import parse_company_id
from spvhub_common.runtime import EventHandler
from spvhub_common.security import Principal
from spvhub_common.uow import SqlUnitOfWork

from spvhub_webhooks import domain
from spvhub_webhooks.adapters import repository as repo
from spvhub_webhooks.adapters.orm import access_grants
from spvhub_webhooks.adapters.repository import Delivery, Endpoint, Leased
from spvhub_webhooks.adapters.sender import SendResult, WebhookSender
from spvhub_webhooks.settings import Settings

log = get_logger(__name__)


@dataclass
class Deps:
    """What the use cases need: a unit-of-work factory, the key box of endpoint secrets, the HTTP sender, settings
    and the clock (the wall clock: signatures and retry windows are about real time, also in dev/test)."""

    uow: Callable[[], SqlUnitOfWork]
    box: SecretBox
    sender: WebhookSender
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)


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

def _out(row: Endpoint) -> dict[str, Any]:
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


async def _check_subscription(deps: Deps, uow: SqlUnitOfWork, tenant: str, event_types: list[str],
                              cifs: list[str]) -> tuple[list[str], list[str]]:
    types = sorted(set(event_types))
    unknown = domain.unknown_event_types(types)
    if unknown or not types:
        raise _bad("unknown_event_type", f"Unknown or missing event types: {', '.join(unknown) or '(none)'}; see "
                   "GET /api/webhooks/event-types.", f"Tipuri de evenimente necunoscute sau lipsă: "
                   f"{', '.join(unknown) or '(niciunul)'}; vedeți GET /api/webhooks/event-types.", unknown=unknown)
    try:
        norm = sorted({parse_company_id(c) for c in cifs})
    except InvalidTaxId:
        norm = []  # one answer for the whole list, whichever CIF in it is wrong
    if not norm or len(norm) > deps.settings.max_endpoint_cifs:
        raise _bad("invalid_cifs", f"Give between 1 and {deps.settings.max_endpoint_cifs} valid CIFs.",
                   f"Indicați între 1 și {deps.settings.max_endpoint_cifs} CIF-uri valide.")
    unseen = [c for c in norm if not await repo.tenant_sees(uow.session, tenant, c)]
    if unseen:
        raise AppError(f"Company {tenant} may not receive events of: {', '.join(unseen)} (only itself and the "
                       "clients in an active collaboration with it, once verified).", code="no_access_to_company",
                       status=403, details={"cifs": unseen},
                       messages={"ro": f"Compania {tenant} nu poate primi evenimentele companiilor: "
                                       f"{', '.join(unseen)} (doar pe ale ei și ale clienților cu care are o "
                                       "colaborare activă, după verificare)."})
    return types, norm


async def _manage(uow: SqlUnitOfWork, user: Principal, endpoint_id: str) -> Endpoint:
    """The endpoint, if the caller is a verified owner or administrator of its tenant; 404 for anyone else who
    has nothing to do with the tenant (an id reveals nothing), 403 for the tenant's other people."""
    session = uow.session
    row = await repo.get_endpoint(session, endpoint_id)
    if row is None or await grant_of(session, access_grants, user.user_id, row.tenant_cif) is None:
        raise endpoint_not_found(endpoint_id)
    await require_grant(session, access_grants, user.user_id, row.tenant_cif, roles=MANAGERS, direct_only=True)
    return row


async def create_endpoint(deps: Deps, user: Principal, *, tenant_cif: str, url: str, event_types: list[str],
                          cifs: list[str] | None, description: str) -> dict[str, Any]:
    """Register an endpoint; the answer carries its secret, shown this once (stored encrypted)."""
    tenant = parse_company_id(tenant_cif)
    await _check_target(deps, url)
    async with deps.uow() as uow:
        s = uow.session
        await require_grant(s, access_grants, user.user_id, tenant, roles=MANAGERS, direct_only=True)
        types, norm = await _check_subscription(deps, uow, tenant, event_types, cifs or [tenant])
        count = await repo.count_endpoints(s, tenant)
        if count >= deps.settings.max_endpoints_per_tenant:
            raise Conflict(f"Company {tenant} already has {count} webhook endpoints, the most allowed.",
                           code="too_many_endpoints", details={"max": deps.settings.max_endpoints_per_tenant},
                           messages={"ro": f"Compania {tenant} are deja {count} endpoint-uri de webhook, cât se "
                                           "permite."})
        eid, secret, now = str(uuid.uuid4()), domain.new_secret(), deps.clock.now()
        await repo.add_endpoint(s, endpoint_id=eid, tenant_cif=tenant, url=url, description=description,
                                event_types=types, cifs=norm, secret_enc=deps.box.encrypt(secret, aad=eid),
                                created_by=user.user_id, now=now)
        await uow.commit()
        row = await _reread(uow, eid)
    log.info("webhook endpoint registered", endpoint_id=eid, tenant_cif=tenant, event_types=len(types),
             cifs=len(norm))
    return {**_out(row), "secret": secret}


async def list_endpoints(deps: Deps, user: Principal, tenant_cif: str | None) -> list[dict[str, Any]]:
    async with deps.uow() as uow:
        s = uow.session
        if tenant_cif:
            tenant = parse_company_id(tenant_cif)
            await require_grant(s, access_grants, user.user_id, tenant, roles=MANAGERS, direct_only=True)
            tenants = [tenant]
        else:
            tenants = await repo.managed_tenants(s, user.user_id)
        return [_out(r) for r in await repo.endpoints_of(s, tenants)]


async def get_endpoint(deps: Deps, user: Principal, endpoint_id: str) -> dict[str, Any]:
    async with deps.uow() as uow:
        return _out(await _manage(uow, user, endpoint_id))


async def update_endpoint(deps: Deps, user: Principal, endpoint_id: str, *, url: str | None = None,
                          event_types: list[str] | None = None, cifs: list[str] | None = None,
                          description: str | None = None, enabled: bool | None = None) -> dict[str, Any]:
    if url is not None:
        await _check_target(deps, url)
    async with deps.uow() as uow:
        s = uow.session
        row = await _manage(uow, user, endpoint_id)
        now = deps.clock.now()
        values: dict[str, Any] = {"updated_at": now}
        if url is not None:
            values["url"] = url
        if description is not None:
            values["description"] = description
        if event_types is not None or cifs is not None:
            types, norm = await _check_subscription(
                deps, uow, row.tenant_cif, event_types if event_types is not None else list(row.event_types),
                cifs if cifs is not None else list(row.cifs))
            values.update(event_types=types, cifs=norm)
        if enabled is True and not row.enabled:
            values.update(enabled=True, disabled_reason=None, disabled_at=None, failing_since=None)
            # what waited while it was off goes out now, with a fresh retry window
            await repo.resume_pending(s, endpoint_id, now,
                                      now + timedelta(seconds=deps.settings.retry_window_seconds))
        elif enabled is False and row.enabled:
            values.update(enabled=False, disabled_reason="manual", disabled_at=now)
        await repo.update_endpoint(s, endpoint_id, **values)
        await uow.commit()
        return _out(await _reread(uow, endpoint_id))


async def rotate_secret(deps: Deps, user: Principal, endpoint_id: str) -> dict[str, Any]:
    """A new secret at once (the old one stops signing); shown this once."""
    async with deps.uow() as uow:
        s = uow.session
        await _manage(uow, user, endpoint_id)
        secret, now = domain.new_secret(), deps.clock.now()
        await repo.update_endpoint(s, endpoint_id, secret_enc=deps.box.encrypt(secret, aad=endpoint_id),
                                   secret_rotated_at=now, updated_at=now)
        await uow.commit()
        row = await _reread(uow, endpoint_id)
    log.info("webhook secret rotated", endpoint_id=endpoint_id)
    return {**_out(row), "secret": secret}


async def _reread(uow: SqlUnitOfWork, endpoint_id: str) -> Endpoint:
    row = await repo.get_endpoint(uow.session, endpoint_id)
    assert row is not None  # written in this transaction
    return row


async def delete_endpoint(deps: Deps, user: Principal, endpoint_id: str) -> None:
    async with deps.uow() as uow:
        await _manage(uow, user, endpoint_id)
        await repo.delete_endpoint(uow.session, endpoint_id)
        await uow.commit()


# ---------------------------------------------------------------- deliveries from events

async def on_event(ev: Event, env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    """One delivery row per endpoint that subscribed to this event type for one of the companies it is about and
    whose tenant may see that company now; written in the consumer's (inbox-claimed) transaction. An endpoint that
    is switched off gets its row as `skipped`: visible in its log and replayable, never sent by itself."""
    sub = domain.BY_CLASS[type(ev)]
    cifs = sub.cifs(ev)
    s = uow.session
    now = deps.clock.now()
    payload = encode(env)
    for ep in await repo.subscribers(s, sub.type, cifs):
        about = None
        for c in cifs:
            if c in ep.cifs and await repo.tenant_sees(s, ep.tenant_cif, c):
                about = c
                break
        if about is None:
            continue
        await repo.add_delivery(s, delivery_id=str(uuid.uuid4()), endpoint_id=ep.id, event_id=env.id,
                                event_type=env.type, cif=about, event_time=env.time,
                                webhook_id=domain.webhook_id(env.id, ep.id), payload=payload,
                                status="pending" if ep.enabled else "skipped", now=now,
                                retry_until=now + timedelta(seconds=deps.settings.retry_window_seconds))


# ---------------------------------------------------------------- the sender

async def send_due(deps: Deps) -> int:
    """Lease due deliveries (SKIP LOCKED: replicas share the work) and post them. A sender killed mid-way leaves
    its rows leased until `lease_until`; they are then sent again (at least once, same `webhook-id`)."""
    now = deps.clock.now()
    lease = now + timedelta(seconds=deps.settings.lease_seconds)
    async with deps.uow() as uow:
        rows = await repo.lease_due(uow.session, now, lease, deps.settings.send_batch)
        await uow.session.commit()
    if not rows:
        return 0
    sem = asyncio.Semaphore(deps.settings.send_concurrency)

    async def one(row: Leased) -> None:
        async with sem:
            try:
                await _send_one(deps, row)
            except Exception as exc:  # one bad row never stops the others; its lease brings it back
                log.exception("webhook delivery failed to record", delivery_id=row.id, error=str(exc)[:300])
    await asyncio.gather(*(one(r) for r in rows))
    return len(rows)


async def _send_one(deps: Deps, row: Leased) -> None:
    secret = deps.box.decrypt(bytes(row.secret_enc), aad=row.endpoint_id)
    body = bytes(row.payload)
    at = deps.clock.now()
    result = await deps.sender.send(row.url, body, domain.signed_headers(secret, row.webhook_id, at, body))
    await record_attempt(deps, row, result)


async def record_attempt(deps: Deps, row: Leased, result: SendResult) -> None:
    st = deps.settings
    now = deps.clock.now()
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
        if not await repo.finish_attempt(s, row.id, row.lease_until, values):
            return
        await repo.add_attempt(s, delivery_id=row.id, endpoint_id=row.endpoint_id, attempt=n, at=now,
                               status_code=result.status_code, latency_ms=result.latency_ms, error=result.error,
                               response_excerpt=result.body_excerpt or None)
        if result.ok:
            await repo.clear_failing(s, row.endpoint_id)
        else:
            ep = await repo.mark_failing(s, row.endpoint_id, now, result.error)
            if ep is not None and ep.enabled and now - ep.failing_since >= timedelta(seconds=st.disable_after_seconds):
                await repo.update_endpoint(s, row.endpoint_id, enabled=False, disabled_reason="failing",
                                           disabled_at=now, updated_at=now)
                owners = await verified_users(s, access_grants, ep.tenant_cif, direct_only=True, roles=MANAGERS)
                uow.publish(EndpointDisabled(endpoint_id=row.endpoint_id, tenant_cif=ep.tenant_cif, url=ep.url,
                                             failing_since=ep.failing_since, last_error=result.error or "",
                                             notify_user_ids=owners))
                log.warning("webhook endpoint disabled after failing", endpoint_id=row.endpoint_id,
                            failing_since=ep.failing_since.isoformat())
        await uow.commit()


# ---------------------------------------------------------------- delivery log and replay

def _delivery_out(r: Delivery) -> dict[str, Any]:
    return {"id": r.id, "endpoint_id": r.endpoint_id, "event_id": r.event_id, "event_type": r.event_type,
            "cif": r.cif, "event_time": r.event_time, "webhook_id": r.webhook_id, "status": r.status,
            "attempts": r.attempts, "next_attempt_at": r.next_attempt_at if r.status == "pending" else None,
            "last_status_code": r.last_status_code, "last_error": r.last_error, "last_latency_ms": r.last_latency_ms,
            "created_at": r.created_at, "delivered_at": r.delivered_at}


async def list_deliveries(deps: Deps, user: Principal, endpoint_id: str, *, status: str | None, limit: int,
                          cursor: str | None) -> dict[str, Any]:
    """The delivery log newest first, a page at a time (no total: a busy endpoint's log is long to count)."""
    async with deps.uow() as uow:
        s = uow.session
        await _manage(uow, user, endpoint_id)
        rows = await repo.deliveries_page(s, endpoint_id, status=status,
                                          after=decode_time_cursor(cursor) if cursor else None, limit=limit + 1)
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return {"items": [_delivery_out(r) for r in page], "next_cursor": next_cursor}


async def get_delivery(deps: Deps, user: Principal, endpoint_id: str, delivery_id: str) -> dict[str, Any]:
    async with deps.uow() as uow:
        s = uow.session
        await _manage(uow, user, endpoint_id)
        r = await repo.get_delivery(s, endpoint_id, delivery_id)
        if r is None:
            raise delivery_not_found(delivery_id)
        tries = await repo.attempts_of(s, delivery_id)
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
        ep = await _manage(uow, user, endpoint_id)
        if not ep.enabled:
            raise _endpoint_off(endpoint_id)
        r = await repo.requeue_one(s, endpoint_id, delivery_id, **_requeue(deps, deps.clock.now()))
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
        ep = await _manage(uow, user, endpoint_id)
        if not ep.enabled:
            raise _endpoint_off(endpoint_id)
        ids = await repo.replay_candidates(s, endpoint_id, since, until, only_failed=only_failed,
                                           limit=deps.settings.replay_max + 1)
        if len(ids) > deps.settings.replay_max:
            raise _bad("replay_too_large", f"More than {deps.settings.replay_max} deliveries in the range; replay a "
                       "shorter range.", f"Peste {deps.settings.replay_max} livrări în interval; retrimiteți un "
                       "interval mai scurt.", max=deps.settings.replay_max)
        if ids:
            await repo.requeue(s, ids, **_requeue(deps, deps.clock.now()))
        await uow.commit()
    return {"replayed": len(ids)}


def event_types() -> list[dict[str, str]]:
    return [{"type": s.type, "topic": s.cls.topic, "description": s.description} for s in domain.SUBSCRIBABLE]


EVENT_HANDLERS: dict[type[Event], EventHandler] = {sub.cls: on_event for sub in domain.SUBSCRIBABLE}
