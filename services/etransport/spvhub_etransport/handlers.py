"""Use cases of the etransport service: which companies to poll (entitlements, authorizations, pauses), polling ANAF's
carrier view and the declarant list, merging into transports, expiry, and the scoped reads behind the API.
The routing table of consumed events is at the bottom."""
from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from prometheus_client import Gauge
from spvhub_common.access import accessible_cifs, require_access
from spvhub_common.anaf.errors import (
    AnafError,
    LimitReached,
    NoRights,
    Unauthorized,
)
from spvhub_common.clock import Clock
from spvhub_common.errors import Conflict, NotFound, TooManyRequests
from spvhub_common.events import CloudEvent, Event
from spvhub_common.events.auth import (
    ConnectionAuthorized,
    ConnectionRevoked,
    ReauthorizationRequired,
    TokenRefreshed,
)
from spvhub_common.events.etransport import TransportAssigned, TransportUpdated, UitExpiring
from spvhub_common.events.portfolio import EntitlementsChanged
from spvhub_common.logging import get_logger
from spvhub_common.paging import decode_cursor, encode_cursor, invalid_cursor
from spvhub_common.pii import parse_company_id
from spvhub_common.runtime import EventHandler
from spvhub_common.tokens import TokenSource, TokenUnavailable
from spvhub_common.uow import SqlUnitOfWork

from spvhub_etransport import domain
from spvhub_etransport.adapters import repository as repo
from spvhub_etransport.adapters.anaf import EtransportApi
from spvhub_etransport.adapters.orm import access_grants
from spvhub_etransport.domain import ChangeEvent, MergeResult, Observation, Transport, VehicleChange
from spvhub_etransport.settings import Settings

log = get_logger(__name__)
T = TypeVar("T")
LEDGER_NS = uuid.UUID("5b0c4a52-8f7e-4b8a-9a61-3d1f0e7c2a11")


def service_name(raw: str) -> str:
    """`E-Transport`, `etransport` -> `etransport` (how the entitlements store service names)."""
    return re.sub(r"[^a-z]", "", raw.lower())


LAST_SUCCESS = Gauge("etransport_sync_last_success_timestamp",
                     "Unix time of the company's last successful e-Transport poll", ["cif"])


class NoUsableConnection(Exception):
    pass


@dataclass
class PollSummary:
    cif: str
    polled_info: bool = False
    polled_lista: bool = False
    seen: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    expired: int = 0
    probes: int = 0
    events: int = 0
    error: str | None = None
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Batch:
    """Everything one merge transaction changes."""

    transports: dict[str, Transport]
    created: set[str] = field(default_factory=set)
    dirty: set[str] = field(default_factory=set)
    history: list[tuple[Transport, int, list[domain.HistoryEntry]]] = field(default_factory=list)
    events: list[tuple[Transport, ChangeEvent]] = field(default_factory=list)

    def record(self, res: MergeResult) -> None:
        t = res.transport
        self.transports[t.uit] = t
        if res.created:
            self.created.add(t.uit)
        if res.changed or res.events:
            self.dirty.add(t.uit)
        if res.history:
            self.history.append((t, t.version, list(res.history)))
        self.events.extend((t, e) for e in res.events)


@dataclass
class Deps:
    """What the use cases need: settings, the platform clock, a unit-of-work factory, ANAF's e-Transport reads and
    the access tokens of connections. One per process (its per-company locks serialise polls of one carrier)."""

    settings: Settings
    clock: Clock
    uow: Callable[[], SqlUnitOfWork]
    anaf: EtransportApi
    tokens: TokenSource
    company_locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    @property
    def lead(self) -> timedelta:
        """How long before a UIT expires that `uit-expiring` is emitted."""
        return timedelta(hours=self.settings.expiring_lead_hours)

    def lock(self, cif: str) -> asyncio.Lock:
        return self.company_locks.setdefault(cif, asyncio.Lock())


# ------------------------------------------------------------------------------ consumed events

async def on_entitlements_changed(ev: EntitlementsChanged, _env: CloudEvent | None, uow: SqlUnitOfWork,
                                  deps: Deps) -> None:
    """The CIF's entitled connections (best first) replace what we knew. A CIF with an e-Transport one is
    polled; with none, its polling stops (status `stopped`, reason `no_entitled_connection`); its transports
    stay readable by its verified people."""
    cif = domain.as_cif(ev.cif)
    if not cif:
        return
    now = deps.clock.now()
    s = uow.session
    rows = [repo.Entitlement(rank=i, connection_id=c.connection_id,
                             holder_cif=domain.as_cif(c.holder_cif) or c.holder_cif,
                             services=sorted({service_name(x) for x in c.services} - {""}), may_file=c.may_file)
            for i, c in enumerate(ev.connections)]
    await repo.replace_entitlements(s, cif, rows)
    entitled: list[str] = []
    for r in rows:
        if "etransport" in r.services and r.connection_id not in entitled:
            entitled.append(r.connection_id)
    await repo.sync_company_connections(s, cif, entitled)
    if entitled:
        await repo.ensure_company(s, cif, now)
    if await repo.get_company(s, cif) is not None:
        await repo.refresh_company_status(s, cif, now)


async def on_connection_authorized(ev: ConnectionAuthorized, _env: CloudEvent | None, uow: SqlUnitOfWork,
                                   deps: Deps) -> None:
    """A paused or revoked connection authorized anew is usable again where it is entitled. Which companies
    it serves is portfolio's call (entitlements), never inferred from the authorization itself."""
    now = deps.clock.now()
    s = uow.session
    affected = set(await repo.set_connection_status(s, ev.connection_id, "active", None,
                                                    only_from=["paused", "revoked"]))
    for c in sorted(affected):
        await repo.refresh_company_status(s, c, now)


async def on_reauthorization_required(ev: ReauthorizationRequired, _env: CloudEvent | None, uow: SqlUnitOfWork,
                                      deps: Deps) -> None:
    """Pause polling through this connection until it is authorized again (or its token refreshed)."""
    cifs = await repo.set_connection_status(uow.session, ev.connection_id, "paused",
                                            f"reauthorization required: {ev.reason}", only_from=["active"])
    _forget_token(deps, ev.connection_id)
    for cif in sorted(set(cifs)):
        await repo.refresh_company_status(uow.session, cif, deps.clock.now())


async def on_token_refreshed(ev: TokenRefreshed, _env: CloudEvent | None, uow: SqlUnitOfWork, deps: Deps) -> None:
    cifs = await repo.set_connection_status(uow.session, ev.connection_id, "active", None, only_from=["paused"])
    for cif in sorted(set(cifs)):
        await repo.refresh_company_status(uow.session, cif, deps.clock.now())


async def on_connection_revoked(ev: ConnectionRevoked, _env: CloudEvent | None, uow: SqlUnitOfWork,
                                deps: Deps) -> None:
    cifs = await repo.set_connection_status(uow.session, ev.connection_id, "revoked", f"revoked: {ev.reason}")
    _forget_token(deps, ev.connection_id)
    for cif in sorted(set(cifs)):
        await repo.refresh_company_status(uow.session, cif, deps.clock.now())


def _forget_token(deps: Deps, connection_id: str) -> None:
    forget = getattr(deps.tokens, "forget", None)
    if forget:
        forget(connection_id)


# ------------------------------------------------------------------------------ polling

async def poll_due(deps: Deps) -> list[PollSummary]:
    """One run of the poll job: poll every company whose info or lista poll is due, then advance time-based
    state (expiry, expiring alerts) for every carrier."""
    now = deps.clock.now()
    async with deps.uow() as uow:
        due = await repo.due_companies(uow.session, now)
    sem = asyncio.Semaphore(deps.settings.poll_concurrency)

    async def one(cif: str, lista_due: bool) -> PollSummary:
        async with sem:
            return await poll_company(deps, cif, lista=lista_due)
    results = list(await asyncio.gather(*(one(c, ld) for c, ld in due)))
    await advance_time(deps)
    return results


async def poll_now(deps: Deps, user_id: str, cif: str, *, lista: bool = False) -> PollSummary:
    """A manual poll (API) by someone who may see the company; refused when it was polled moments ago."""
    cif = parse_company_id(cif)
    async with deps.uow() as uow:
        await require_access(uow.session, access_grants, user_id, cif)
        company = await repo.get_company(uow.session, cif)
    if company is None:
        raise NotFound(f"Company CIF {cif} has no e-Transport authorization known to the platform.",
                       code="company_not_tracked", details={"cif": cif})
    if company.status != "active":
        raise Conflict(f"Polling of CIF {cif} is stopped: {company.status_reason or company.status}.",
                       code=f"company_{company.status}", details={"cif": cif, "status": company.status})
    now = deps.clock.now()
    last = company.last_info_poll_at
    gap = deps.settings.manual_poll_min_seconds
    if last is not None and (now - last).total_seconds() < gap:
        wait = int(gap - (now - last).total_seconds()) + 1
        raise TooManyRequests(f"CIF {cif} was polled moments ago; try again in {wait} s.", code="poll_too_soon",
                              details={"retry_after_seconds": wait})
    summary = await poll_company(deps, cif, lista=lista)
    if summary.skipped:
        raise Conflict(f"Polling of CIF {cif} is not possible now: {summary.skipped}.", code="company_paused",
                       details={"cif": cif})
    return summary


async def poll_company(deps: Deps, cif: str, *, lista: bool | None = None) -> PollSummary:
    async with deps.lock(cif):
        return await _poll_company(deps, cif, lista)


async def _poll_company(deps: Deps, cif: str, lista: bool | None) -> PollSummary:
    summary = PollSummary(cif)
    settings = deps.settings
    now = deps.clock.now()
    async with deps.uow() as uow:
        company = await repo.get_company(uow.session, cif)
        conns = await repo.usable_connections(uow.session, cif) if company else []
    if company is None or company.status != "active" or not conns:
        summary.skipped = "not tracked" if company is None else (company.status_reason or company.status)
        return summary
    do_lista = lista if lista is not None else (company.next_lista_due is None or company.next_lista_due <= now)
    observations: list[Observation] = []
    mvh: list[tuple[str, VehicleChange]] = []
    gone: set[str] = set()
    fetched_at: datetime | None = None
    failure: Exception | None = None
    try:
        items = await _call(deps, cif, conns, lambda tok: deps.anaf.info(tok, cif))
        fetched_at = deps.clock.now()
        summary.polled_info = True
        for it in items:
            o = domain.observation_from_info(it, cif)
            if o:
                observations.append(o)
        summary.seen = len(observations)
        seen = {o.uit for o in observations}
        async with deps.uow() as uow:
            known = await repo.load_transports(uow.session, cif, active=True)
        candidates = [t for t in known.values() if domain.needs_probe(t, seen, now)]
        for t in candidates[: settings.max_probes_per_poll]:
            found = await _call(deps, cif, conns, _probe(deps, cif, t.uit))
            summary.probes += 1
            hit = [o for o in (domain.observation_from_info(x, cif, source="probe") for x in found)
                   if o and o.uit == t.uit]
            if hit:
                observations.extend(hit)
            else:
                gone.add(t.uit)
        if do_lista:
            litems = await _call(deps, cif, conns, lambda tok: deps.anaf.lista(tok, cif, settings.lista_days))
            summary.polled_lista = True
            for it in litems:
                o = domain.observation_from_lista(it, cif)
                if o:
                    observations.append(o)
                elif (m := domain.vehicle_change_from_lista(it)) is not None:
                    mvh.append(m)
    except (AnafError, NoUsableConnection) as exc:
        summary.error = f"{type(exc).__name__}: {exc}"[:500]
        failure = exc
        await _record_failure(deps, cif, exc, now)
        if not summary.polled_info:
            return summary
    async with deps.uow() as uow:
        row = await repo.lock_company(uow.session, cif)
        now = deps.clock.now()
        if fetched_at and row and row.last_info_fetched_at and row.last_info_fetched_at > fetched_at:
            # a newer poll already merged a later answer: ours would resurrect what it saw deleted
            summary.skipped = "superseded by a newer poll"
            return summary
        batch = await _merge(deps, uow, cif, observations, mvh, gone, now)
        _summarise(batch, summary)
        values: dict[str, Any] = {"last_info_poll_at": now, "last_info_fetched_at": fetched_at,
                                  "next_info_due": now + timedelta(seconds=settings.info_poll_interval)}
        if summary.polled_lista:
            values.update(last_lista_poll_at=now,
                          next_lista_due=now + timedelta(seconds=settings.lista_poll_interval))
        elif do_lista and failure is not None:
            # the list failed after info succeeded: retry it later (a limit only after it resets)
            limit_reset = failure.resets_at if isinstance(failure, LimitReached) else None
            values.update(next_lista_due=limit_reset or now + timedelta(hours=1))
        if summary.error is None:
            values.update(last_success_at=now, consecutive_errors=0, last_error=None)
        await repo.update_company(uow.session, cif, **values)
        await uow.commit()
    if summary.error is None:
        # platform clock (follows the emulator in dev/test): freshness alerts compare it with time()
        LAST_SUCCESS.labels(cif).set(now.timestamp())
    return summary


def _probe(deps: Deps, cif: str, uit: str) -> Callable[[str], Awaitable[list[dict[str, Any]]]]:
    return lambda tok: deps.anaf.info(tok, cif, uit=uit)


async def _call(deps: Deps, cif: str, conns: list[str], fn: Callable[[str], Awaitable[T]]) -> T:
    """Run an ANAF read with the first usable connection: refresh once after a 401/403, move on to the next
    connection when one is unusable or lacks rights on `cif`."""
    last: Exception | None = None
    for conn in list(conns):
        try:
            tok = await deps.tokens.access_token(conn)
            try:
                return await fn(tok.access_token)
            except Unauthorized:
                tok = await deps.tokens.refresh(conn)
                return await fn(tok.access_token)
        except TokenUnavailable as exc:
            last = exc
            if exc.permanent:
                status = "paused" if exc.reason == "reauthorization_required" else "lost"
                await _set_connection(deps, cif, conn, status, exc.reason)
                conns.remove(conn)
                continue
            raise NoUsableConnection(_describe(exc)) from exc
        except NoRights as exc:
            last = exc
            await _set_connection(deps, cif, conn, "no_rights", exc.text[:300])
            conns.remove(conn)
            continue
    raise NoUsableConnection(f"no usable connection for CIF {cif}: {_describe(last)}") from last


async def _set_connection(deps: Deps, cif: str, conn: str, status: str, reason: str) -> None:
    async with deps.uow() as uow:
        await repo.set_connection_status(uow.session, conn, status, reason, cif=cif)
        await repo.refresh_company_status(uow.session, cif, deps.clock.now())
        await uow.commit()


async def _record_failure(deps: Deps, cif: str, exc: Exception, now: datetime) -> None:
    async with deps.uow() as uow:
        row = await repo.get_company(uow.session, cif)
        if row is None:
            return
        errors = (row.consecutive_errors or 0) + 1
        if isinstance(exc, LimitReached) and exc.resets_at:
            retry = exc.resets_at  # a limit is never retried before it resets
        else:
            retry = now + timedelta(seconds=min(deps.settings.info_poll_interval, 30 * 2 ** min(errors, 8)))
        await repo.update_company(uow.session, cif, last_error=f"{type(exc).__name__}: {exc}"[:1000],
                                  last_error_at=now, consecutive_errors=errors, last_info_poll_at=now,
                                  next_info_due=retry)
        await uow.commit()
    log.warning("etransport poll failed", cif=cif, error=f"{type(exc).__name__}: {str(exc)[:200]}")


# ------------------------------------------------------------------------------ merge + time

async def _merge(deps: Deps, uow: SqlUnitOfWork, cif: str, observations: list[Observation],
                 mvh: list[tuple[str, VehicleChange]], gone: set[str], now: datetime) -> _Batch:
    s = uow.session
    uits = {o.uit for o in observations} | {u for u, _ in mvh} | gone
    batch = _Batch(await repo.load_transports(s, cif, uits, active=True))
    # info before lista: the carrier view is authoritative for route/expiry, lista adds partner and goods
    for obs in sorted(observations, key=lambda o: 0 if o.source in ("info", "probe") else 1):
        t = batch.transports.get(obs.uit)
        batch.record(domain.new_transport(obs, now) if t is None else domain.merge(t, obs, now))
        batch.dirty.add(obs.uit)  # last_seen_* move even when nothing else changed
    for uit, vc in mvh:
        if (t := batch.transports.get(uit)) is not None:
            batch.record(domain.add_vehicle_change(t, vc, now, "lista"))
    for uit in sorted(gone):
        if (t := batch.transports.get(uit)) is not None:
            batch.record(domain.vanished(t, now))
    for t in list(batch.transports.values()):
        batch.record(domain.tick(t, now, deps.lead))
    await _write(uow, batch, now)
    return batch


async def advance_time(deps: Deps) -> int:
    """Expire active UITs whose expiry day began and send due `uit-expiring` alerts, carrier by carrier."""
    now = deps.clock.now()
    horizon = now + deps.lead
    async with deps.uow() as uow:
        carriers = await repo.carriers_with_time_due(uow.session, now, horizon)
    n = 0
    for cif in carriers:
        async with deps.lock(cif), deps.uow() as uow:
            await repo.lock_company(uow.session, cif)
            now = deps.clock.now()
            batch = _Batch(await repo.transports_due_for_time(uow.session, cif, now + deps.lead))
            for t in list(batch.transports.values()):
                batch.record(domain.tick(t, now, deps.lead))
            await _write(uow, batch, now)
            await uow.commit()
            n += len(batch.dirty)
    return n


async def _write(uow: SqlUnitOfWork, batch: _Batch, now: datetime) -> None:
    s = uow.session
    for uit in sorted(batch.dirty):
        await repo.save_transport(s, batch.transports[uit], uit in batch.created)
    for t, version, entries in batch.history:
        await repo.add_history(s, _at_version(t, version), entries, now)
    for t, ch in batch.events:
        event_id = str(uuid.uuid5(LEDGER_NS, f"{t.carrier_cif}:{t.uit}:{ch.kind}:{ch.version}"))
        if await repo.claim_event(s, t.carrier_cif, t.uit, ch.kind, ch.version, event_id, now):
            uow.publish(to_event(t, ch))


def _summarise(batch: _Batch, summary: PollSummary) -> None:
    summary.created = len(batch.created)
    summary.updated = len(batch.dirty - batch.created)
    summary.events = len(batch.events)
    for _t, _v, entries in batch.history:
        summary.deleted += sum(1 for e in entries if e.kind == "deleted")
        summary.expired += sum(1 for e in entries if e.kind == "expired")


# ------------------------------------------------------------------------------ reads (API)

async def _visible_cifs(uow: SqlUnitOfWork, user_id: str, company: str | None) -> list[str]:
    """The one company asked for (if the caller may see it), else every company the caller may see."""
    if company:
        cif = parse_company_id(company)
        await require_access(uow.session, access_grants, user_id, cif)
        return [cif]
    return await accessible_cifs(uow.session, access_grants, user_id)


async def list_transports(deps: Deps, user_id: str, *, company: str | None, state: str | None,
                          vehicle: str | None, declarant: str | None, date_from: date | None,
                          date_to: date | None, cursor: str | None, limit: int) -> dict[str, Any]:
    """One page of the caller's carriers' transports in list order, with the cursor of the next page (None on the
    last one) and how many match in all."""
    after = _transport_key(cursor) if cursor else None
    async with deps.uow() as uow:
        cifs = await _visible_cifs(uow, user_id, company)
        total, rows = (0, []) if not cifs else await repo.search_transports(
            uow.session, cifs, state=state, vehicle=domain.as_plate(vehicle) if vehicle else None,
            declarant=domain.as_cif(declarant) if declarant else None, date_from=date_from, date_to=date_to,
            after=after, limit=limit + 1)
    page = rows[:limit]
    next_cursor = encode_cursor(*repo.key_of(page[-1])) if len(rows) > limit else None
    return {"items": [transport_view(r) for r in page], "next_cursor": next_cursor, "total": total}


def _transport_key(cursor: str) -> repo.TransportKey:
    transport_date, first_seen_at, uit, carrier_cif = decode_cursor(cursor, 4)
    try:
        key = repo.TransportKey(None if transport_date is None else date.fromisoformat(transport_date),
                                datetime.fromisoformat(first_seen_at), uit, carrier_cif)
    except (TypeError, ValueError) as exc:
        raise invalid_cursor() from exc
    if key.first_seen_at.tzinfo is None or not isinstance(uit, str) or not isinstance(carrier_cif, str):
        raise invalid_cursor()
    return key


async def get_transport(deps: Deps, user_id: str, uit: str, carrier: str | None = None) -> dict[str, Any]:
    async with deps.uow() as uow:
        cifs = await _visible_cifs(uow, user_id, carrier)
        row = await repo.find_transport(uow.session, cifs, uit.strip().upper()) if cifs else None
        if row is None:
            raise NotFound(f"No transport with UIT {uit} in the companies you can see.",
                           code="transport_not_found", details={"uit": uit})
        history = await repo.history_of(uow.session, row.carrier_cif, row.uit)
        events = await repo.events_of(uow.session, row.carrier_cif, row.uit)
    out = transport_view(row, detail=True)
    out["history"] = [{"version": h.version, "kind": h.kind, "source": h.source, "changes": h.changes,
                       "observed_at": h.observed_at} for h in history]
    out["events"] = [{"kind": e.kind, "version": e.version, "emitted_at": e.emitted_at} for e in events]
    return out


async def list_companies(deps: Deps, user_id: str) -> list[dict[str, Any]]:
    async with deps.uow() as uow:
        cifs = await accessible_cifs(uow.session, access_grants, user_id)
        rows = await repo.list_companies(uow.session, cifs)
        routes_ = await repo.entitled_routes(uow.session, [r.cif for r in rows])
    return [{"cif": r.cif, "status": r.status, "status_reason": r.status_reason,
             "synced_through": _through(r.cif, routes_.get(r.cif)),
             "last_info_poll_at": r.last_info_poll_at, "last_lista_poll_at": r.last_lista_poll_at,
             "last_success_at": r.last_success_at, "next_info_due": r.next_info_due,
             "last_error": r.last_error, "last_error_at": r.last_error_at,
             "consecutive_errors": r.consecutive_errors} for r in rows]


def _describe(exc: Exception | None) -> str:
    """An error for the company's health (shown to its people): never the connection id, which may be another
    tenant's."""
    if isinstance(exc, TokenUnavailable):
        return f"{exc.reason} {_auth_detail(exc)}".strip()
    return str(exc) if exc is not None else "no entitled connection"


def _auth_detail(exc: TokenUnavailable) -> str:
    """What auth said, as the company's health has always shown it: its error code for a refusal a person must act
    on, the HTTP status of a failure, else the client's note (the transport error's name, or `status <status>` for a
    connection auth does not report live)."""
    if exc.status_code is None:
        return exc.message
    return exc.code if exc.permanent else f"HTTP {exc.status_code}"


def _through(cif: str, route: tuple[str, bool] | None) -> dict[str, Any] | None:
    """Whose authorization polls the company: its own or its accounting firm's (with the firm's CIF); never
    connection ids, which may belong to another tenant."""
    if route is None:
        return None
    holder, active = route
    own = holder == cif
    return {"kind": "own" if own else "accounting_firm", "firm_cif": None if own else holder, "active": active}


def _at_version(t: Transport, version: int) -> Transport:
    return t if t.version == version else replace(t, version=version)


def to_event(t: Transport, ch: ChangeEvent) -> Event:
    d = ch.data
    if ch.kind == "assigned":
        return TransportAssigned(carrier_cif=t.carrier_cif, uit=t.uit, declarant_cif=t.declarant_cif or "",
                                 vehicle=d.get("vehicle"), trailer1=d.get("trailer1"), trailer2=d.get("trailer2"),
                                 transport_date=d.get("transport_date"), uit_expires_at=d.get("uit_expires_at"),
                                 route_start=d.get("route_start"), route_end=d.get("route_end"),
                                 declarant_name=t.declarant_name, change_version=ch.version)
    if ch.kind == "expiring":
        return UitExpiring(carrier_cif=t.carrier_cif, uit=t.uit, uit_expires_at=d["uit_expires_at"],
                           vehicle=d.get("vehicle"), declarant_cif=t.declarant_cif)
    return TransportUpdated(carrier_cif=t.carrier_cif, uit=t.uit, change=ch.kind, vehicle=d.get("vehicle"),
                            change_version=ch.version, state=d.get("state"), trailer1=d.get("trailer1"),
                            trailer2=d.get("trailer2"), vehicle_changed_at=d.get("changed_at"),
                            confirmation=d.get("confirmation"), corrected_fields=d.get("fields", []),
                            declarant_cif=t.declarant_cif, transport_date=d.get("transport_date"),
                            uit_expires_at=d.get("uit_expires_at"))


def transport_view(r: repo.TransportRecord, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "uit": r.uit, "carrier_cif": r.carrier_cif, "carrier_name": r.carrier_name, "state": r.state,
        "declarant_cif": r.declarant_cif, "declarant_name": r.declarant_name, "declarant_ref": r.declarant_ref,
        "operation_type": r.operation_type, "transport_date": r.transport_date, "uit_expires_on": r.expires_on,
        "uit_expires_at": r.expires_at, "expiry_source": r.expiry_source,
        "partner": {"country": r.partner_country, "code": r.partner_code, "name": r.partner_name}
        if r.partner_code or r.partner_name else None,
        "vehicle": r.vehicle, "trailer1": r.trailer1, "trailer2": r.trailer2,
        "route_start": r.route_start_text, "route_end": r.route_end_text,
        "confirmation": r.confirmation, "vehicle_change_count": len(r.vehicle_changes or []),
        "first_seen_at": r.first_seen_at, "last_seen_at": r.last_seen_at,
        "last_seen_in_anaf_info_at": r.last_seen_in_info_at, "deleted_at": r.deleted_at, "expired_at": r.expired_at,
    }
    if detail:
        out.update({
            "declared_vehicle": r.declared_vehicle, "declared_trailer1": r.declared_trailer1,
            "declared_trailer2": r.declared_trailer2, "vehicle_changes": r.vehicle_changes,
            "route_start_detail": r.route_start, "route_end_detail": r.route_end, "documents": r.documents,
            "goods": r.goods, "sources": r.sources, "version": r.version, "plates": r.plates,
        })
    return out


EVENT_HANDLERS: dict[type[Event], EventHandler] = {
    EntitlementsChanged: on_entitlements_changed,
    ConnectionAuthorized: on_connection_authorized,
    ReauthorizationRequired: on_reauthorization_required,
    TokenRefreshed: on_token_refreshed,
    ConnectionRevoked: on_connection_revoked,
}
