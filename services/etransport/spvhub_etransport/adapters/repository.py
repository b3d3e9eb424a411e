"""SQL for the etransport tables: companies and their connections, transports (row <-> domain), history, the
emitted-event ledger, and the scoped read queries behind the HTTP API."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from spvhub_etransport.adapters.orm import (
    companies,
    company_connections,
    entitlements,
    transport_events,
    transport_history,
    transports,
)
from spvhub_etransport.domain import ACTIVE, Confirmation, HistoryEntry, Transport, VehicleChange

R = TypeVar("R")


def _record(cls: type[R], row: Any) -> R:
    """A typed record from a result row (only the record's own fields are read)."""
    m = row._mapping
    return cls(**{f.name: m[f.name] for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Company:
    """A carrier the platform polls, with its polling health."""

    cif: str
    status: str
    status_reason: str | None
    next_info_due: datetime | None
    next_lista_due: datetime | None
    last_info_poll_at: datetime | None
    last_info_fetched_at: datetime | None
    last_lista_poll_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_errors: int


@dataclass(frozen=True)
class TransportRecord:
    """A stored transport as the read side shows it."""

    uit: str
    carrier_cif: str
    carrier_name: str | None
    state: str
    declarant_cif: str | None
    declarant_name: str | None
    declarant_ref: str | None
    operation_type: str | None
    transport_date: date | None
    expires_on: date | None
    expires_at: datetime | None
    expiry_source: str | None
    partner_country: str | None
    partner_code: str | None
    partner_name: str | None
    declared_vehicle: str | None
    declared_trailer1: str | None
    declared_trailer2: str | None
    vehicle: str | None
    trailer1: str | None
    trailer2: str | None
    plates: list[str]
    route_start: Any
    route_end: Any
    route_start_text: str | None
    route_end_text: str | None
    documents: str | None
    goods: Any
    vehicle_changes: list[dict[str, Any]]
    confirmation: Any
    version: int
    sources: list[str]
    first_seen_at: datetime
    last_seen_at: datetime
    last_seen_in_info_at: datetime | None
    deleted_at: datetime | None
    expired_at: datetime | None


class TransportKey(NamedTuple):
    """Where a transport stands in the list order: newest transport date first (none last), newest first seen,
    then UIT and carrier (unique together, so the order is total and a page boundary is exact)."""

    transport_date: date | None
    first_seen_at: datetime
    uit: str
    carrier_cif: str


def key_of(t: TransportRecord) -> TransportKey:
    return TransportKey(t.transport_date, t.first_seen_at, t.uit, t.carrier_cif)


@dataclass(frozen=True)
class HistoryRecord:
    version: int
    kind: str
    source: str
    changes: Any
    observed_at: datetime


@dataclass(frozen=True)
class EmittedRecord:
    kind: str
    version: int
    emitted_at: datetime


@dataclass(frozen=True)
class Entitlement:
    """One entitled connection of a CIF, in portfolio's order (rank 0 is the best)."""

    rank: int
    connection_id: str
    holder_cif: str
    services: list[str]
    may_file: bool


# -------------------------------------------------------------------------------------------------- companies


async def upsert_connection(session: AsyncSession, cif: str, connection_id: str, source: str, status: str,
                            reason: str | None = None) -> None:
    stmt = insert(company_connections).values(cif=cif, connection_id=connection_id, source=source, status=status,
                                              status_reason=reason, updated_at=func.now())
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["cif", "connection_id"],
        set_={"status": status, "status_reason": reason, "updated_at": func.now(),
              # a connection seen through rights discovery keeps that source (it is the richer one)
              "source": func.coalesce(func.nullif(company_connections.c.source, "authorized"), source)}))


async def connections_of(session: AsyncSession, connection_id: str) -> list[tuple[str, str]]:
    rows = await session.execute(select(company_connections.c.cif, company_connections.c.status)
                                 .where(company_connections.c.connection_id == connection_id))
    return [(r[0], r[1]) for r in rows]


async def set_connection_status(session: AsyncSession, connection_id: str, status: str, reason: str | None,
                                *, cif: str | None = None, only_from: Sequence[str] | None = None) -> list[str]:
    stmt = (update(company_connections).where(company_connections.c.connection_id == connection_id)
            .values(status=status, status_reason=reason, updated_at=func.now())
            .returning(company_connections.c.cif))
    if cif is not None:
        stmt = stmt.where(company_connections.c.cif == cif)
    if only_from is not None:
        stmt = stmt.where(company_connections.c.status.in_(list(only_from)))
    return [r[0] for r in await session.execute(stmt)]


ETRANSPORT = "etransport"


async def usable_connections(session: AsyncSession, cif: str) -> list[str]:
    """The connections entitled for `cif` with e-Transport that may be used now, best first (portfolio's rank)."""
    rows = await session.execute(
        select(company_connections.c.connection_id)
        .join(entitlements, and_(entitlements.c.cif == company_connections.c.cif,
                                 entitlements.c.connection_id == company_connections.c.connection_id))
        .where(company_connections.c.cif == cif, company_connections.c.status == "active",
               entitlements.c.services.any(ETRANSPORT))
        .order_by(entitlements.c.rank))
    seen: list[str] = []
    for (cid,) in rows:
        if cid not in seen:
            seen.append(cid)
    return seen


async def replace_entitlements(session: AsyncSession, cif: str, rows: Sequence[Entitlement]) -> None:
    await session.execute(delete(entitlements).where(entitlements.c.cif == cif))
    if rows:
        await session.execute(insert(entitlements).values([{"cif": cif, **asdict(r)} for r in rows]))


async def entitled_routes(session: AsyncSession, cifs: Sequence[str]) -> dict[str, tuple[str, bool]]:
    """CIF -> (holder CIF, usable now) of the connection that polls it (the first usable entitled one, else the
    first entitled one)."""
    rows = await session.execute(
        select(entitlements.c.cif, entitlements.c.holder_cif,
               func.coalesce(company_connections.c.status, "active").label("status"))
        .select_from(entitlements.outerjoin(company_connections, and_(
            company_connections.c.cif == entitlements.c.cif,
            company_connections.c.connection_id == entitlements.c.connection_id)))
        .where(entitlements.c.cif.in_(list(cifs)), entitlements.c.services.any(ETRANSPORT))
        .order_by(entitlements.c.cif, entitlements.c.rank))
    out: dict[str, tuple[str, bool]] = {}
    for cif, holder, status in rows:
        if cif not in out or (not out[cif][1] and status == "active"):
            out[cif] = (holder, status == "active")
    return out


async def sync_company_connections(session: AsyncSession, cif: str, entitled: list[str]) -> None:
    """Make the CIF's connection rows the entitled ones: drop the others; a newly entitled connection starts with
    the state it has for other companies (paused, revoked) or active; one marked lost/no_service is active again
    (portfolio just named it)."""
    await session.execute(delete(company_connections).where(
        company_connections.c.cif == cif,
        company_connections.c.connection_id.not_in(entitled) if entitled else company_connections.c.cif == cif))
    if not entitled:
        return
    known = dict((await session.execute(
        select(company_connections.c.connection_id, company_connections.c.status)
        .where(company_connections.c.cif == cif))).all())
    elsewhere = dict((await session.execute(
        select(company_connections.c.connection_id, company_connections.c.status)
        .where(company_connections.c.connection_id.in_(entitled), company_connections.c.cif != cif,
               company_connections.c.status.in_(["paused", "revoked"])))).all())
    for cid in entitled:
        status = known.get(cid)
        if status is None:
            await upsert_connection(session, cif, cid, "entitled", elsewhere.get(cid, "active"))
        elif status in ("lost", "no_service"):
            await upsert_connection(session, cif, cid, "entitled", "active")


async def ensure_company(session: AsyncSession, cif: str, now: datetime) -> None:
    """Create the company row (due at once) if new."""
    await session.execute(insert(companies).values(cif=cif, status="active", next_info_due=now,
                                                   next_lista_due=now).on_conflict_do_nothing())


async def refresh_company_status(session: AsyncSession, cif: str, now: datetime) -> str:
    """Company status from its connections: active if one is usable, else the most telling reason."""
    rows = (await session.execute(select(company_connections.c.status, company_connections.c.status_reason)
                                  .where(company_connections.c.cif == cif))).all()
    statuses = [r[0] for r in rows]
    if not rows:
        # stable reason code: the company's own people are told by portfolio; the health shows why
        status, reason = "stopped", "no_entitled_connection"
    elif "active" in statuses:
        status, reason = "active", None
    elif "paused" in statuses:
        status, reason = "paused", next(r[1] for r in rows if r[0] == "paused")
    elif "no_rights" in statuses:
        status, reason = "no_rights", next(r[1] for r in rows if r[0] == "no_rights")
    else:
        status, reason = "lost", next((r[1] for r in rows if r[1]), "no usable e-Transport connection")
    prev = (await session.execute(select(companies.c.status).where(companies.c.cif == cif))).scalar()
    values: dict[str, Any] = {"status": status, "status_reason": reason, "updated_at": func.now()}
    if status == "active" and prev != "active":
        values.update(next_info_due=now, next_lista_due=now)  # resume promptly
    await session.execute(update(companies).where(companies.c.cif == cif).values(**values))
    return status


async def lock_company(session: AsyncSession, cif: str) -> Company | None:
    row = (await session.execute(select(companies).where(companies.c.cif == cif).with_for_update())).first()
    return None if row is None else _record(Company, row)


async def get_company(session: AsyncSession, cif: str) -> Company | None:
    row = (await session.execute(select(companies).where(companies.c.cif == cif))).first()
    return None if row is None else _record(Company, row)


async def due_companies(session: AsyncSession, now: datetime, limit: int = 500) -> list[tuple[str, bool]]:
    """(cif, lista_due) of active companies whose info or lista poll is due."""
    rows = await session.execute(
        select(companies.c.cif, companies.c.next_lista_due)
        .where(companies.c.status == "active",
               or_(companies.c.next_info_due <= now, companies.c.next_info_due.is_(None),
                   companies.c.next_lista_due <= now, companies.c.next_lista_due.is_(None)))
        .order_by(companies.c.next_info_due.nulls_first()).limit(limit))
    return [(r[0], r[1] is None or r[1] <= now) for r in rows]


async def update_company(session: AsyncSession, cif: str, **values: Any) -> None:
    await session.execute(update(companies).where(companies.c.cif == cif).values(updated_at=func.now(), **values))


async def list_companies(session: AsyncSession, cifs: Iterable[str]) -> list[Company]:
    rows = await session.execute(select(companies).where(companies.c.cif.in_(list(cifs))).order_by(companies.c.cif))
    return [_record(Company, r) for r in rows]


# -------------------------------------------------------------------------------------------------- transports


def _vc(rows: Any) -> list[VehicleChange]:
    return [VehicleChange.from_json(d) for d in (rows or [])]


def to_domain(r: Any) -> Transport:
    return Transport(
        uit=r.uit, carrier_cif=r.carrier_cif, state=r.state, carrier_name=r.carrier_name,
        carrier_country=r.carrier_country, declarant_cif=r.declarant_cif, declarant_name=r.declarant_name,
        declarant_ref=r.declarant_ref, operation_type=r.operation_type, transport_date=r.transport_date,
        expires_on=r.expires_on, expiry_source=r.expiry_source, partner_country=r.partner_country,
        partner_code=r.partner_code, partner_name=r.partner_name, declared_vehicle=r.declared_vehicle,
        declared_trailer1=r.declared_trailer1, declared_trailer2=r.declared_trailer2, route_start=r.route_start,
        route_end=r.route_end, route_start_text=r.route_start_text, route_end_text=r.route_end_text,
        documents=r.documents, anaf_id=r.anaf_id, goods=r.goods, vehicle_changes=_vc(r.vehicle_changes),
        confirmation=Confirmation.from_json(r.confirmation), confirmation_count=r.confirmation_count,
        correction_count=r.correction_count, deletion_count=r.deletion_count,
        reinstatement_count=r.reinstatement_count, version=r.version, first_seen_at=r.first_seen_at,
        last_seen_at=r.last_seen_at, last_seen_in_info_at=r.last_seen_in_info_at, deleted_at=r.deleted_at,
        expired_at=r.expired_at, expiring_notified_at=r.expiring_notified_at, sources=list(r.sources or []))


def to_row(t: Transport) -> dict[str, Any]:
    vehicle, t1, t2 = t.current
    return dict(
        carrier_cif=t.carrier_cif, uit=t.uit, state=t.state, carrier_name=t.carrier_name,
        carrier_country=t.carrier_country, declarant_cif=t.declarant_cif, declarant_name=t.declarant_name,
        declarant_ref=t.declarant_ref, operation_type=t.operation_type, transport_date=t.transport_date,
        expires_on=t.expires_on, expires_at=t.expires_at, expiry_source=t.expiry_source,
        partner_country=t.partner_country, partner_code=t.partner_code, partner_name=t.partner_name,
        declared_vehicle=t.declared_vehicle, declared_trailer1=t.declared_trailer1,
        declared_trailer2=t.declared_trailer2, vehicle=vehicle, trailer1=t1, trailer2=t2, plates=t.plates,
        route_start=t.route_start, route_end=t.route_end, route_start_text=t.route_start_text,
        route_end_text=t.route_end_text, documents=t.documents, anaf_id=t.anaf_id, goods=t.goods,
        vehicle_changes=[c.to_json() for c in t.vehicle_changes],
        confirmation=t.confirmation.to_json() if t.confirmation else None,
        confirmation_count=t.confirmation_count, correction_count=t.correction_count,
        deletion_count=t.deletion_count, reinstatement_count=t.reinstatement_count, version=t.version,
        sources=t.sources, first_seen_at=t.first_seen_at, last_seen_at=t.last_seen_at,
        last_seen_in_info_at=t.last_seen_in_info_at, deleted_at=t.deleted_at, expired_at=t.expired_at,
        expiring_notified_at=t.expiring_notified_at, updated_at=func.now())


async def load_transports(session: AsyncSession, carrier_cif: str, uits: Iterable[str] = (), *,
                          active: bool = False) -> dict[str, Transport]:
    """Transports of a carrier: those named in `uits`, plus every active one when `active`."""
    uit_list = list(set(uits))
    conds: list[Any] = []
    if uit_list:
        conds.append(transports.c.uit.in_(uit_list))
    if active:
        conds.append(transports.c.state == ACTIVE)
    if not conds:
        return {}
    rows = await session.execute(select(transports).where(transports.c.carrier_cif == carrier_cif, or_(*conds)))
    return {r.uit: to_domain(r) for r in rows}


async def transports_due_for_time(session: AsyncSession, carrier_cif: str, horizon: datetime) -> dict[str, Transport]:
    """Active transports of a carrier whose expiry (or expiry alert) falls before `horizon`."""
    rows = await session.execute(select(transports).where(
        transports.c.carrier_cif == carrier_cif, transports.c.state == ACTIVE, transports.c.expires_at <= horizon))
    return {r.uit: to_domain(r) for r in rows}


async def carriers_with_time_due(session: AsyncSession, now: datetime, horizon: datetime) -> list[str]:
    """Carriers with an active transport to expire (expiry reached) or to alert (within the lead, not alerted)."""
    rows = await session.execute(select(transports.c.carrier_cif).distinct().where(
        transports.c.state == ACTIVE, transports.c.expires_at <= horizon,
        or_(transports.c.expiring_notified_at.is_(None), transports.c.expires_at <= now)))
    return [r[0] for r in rows]


async def save_transport(session: AsyncSession, t: Transport, created: bool) -> None:
    row = to_row(t)
    if created:
        await session.execute(insert(transports).values(**row))
    else:
        await session.execute(update(transports).where(transports.c.carrier_cif == t.carrier_cif,
                                                       transports.c.uit == t.uit).values(**row))


async def add_history(session: AsyncSession, t: Transport, entries: Sequence[HistoryEntry], at: datetime) -> None:
    if not entries:
        return
    await session.execute(insert(transport_history), [
        {"carrier_cif": t.carrier_cif, "uit": t.uit, "version": t.version, "kind": e.kind, "source": e.source,
         "changes": e.changes, "observed_at": at} for e in entries])


async def claim_event(session: AsyncSession, carrier_cif: str, uit: str, kind: str, version: int, event_id: str,
                      at: datetime) -> bool:
    """Record an emission; False when this (carrier, uit, kind, version) was already emitted."""
    stmt = insert(transport_events).values(carrier_cif=carrier_cif, uit=uit, kind=kind, version=version,
                                           event_id=event_id, emitted_at=at)
    res = await session.execute(stmt.on_conflict_do_nothing(
        index_elements=["carrier_cif", "uit", "kind", "version"]).returning(transport_events.c.event_id))
    return res.scalar() is not None


# -------------------------------------------------------------------------------------------------- read side


async def search_transports(session: AsyncSession, cifs: Sequence[str], *, state: str | None = None,
                            vehicle: str | None = None, declarant: str | None = None,
                            date_from: date | None = None, date_to: date | None = None,
                            after: TransportKey | None = None, limit: int = 50) -> tuple[int, list[TransportRecord]]:
    """How many transports match, and `limit` of them in list order, after the key `after` when given."""
    conds: list[Any] = [transports.c.carrier_cif.in_(list(cifs))]
    if state:
        conds.append(transports.c.state == state)
    if vehicle:
        conds.append(transports.c.plates.any(vehicle))
    if declarant:
        conds.append(transports.c.declarant_cif == declarant)
    if date_from:
        conds.append(transports.c.transport_date >= date_from)
    if date_to:
        conds.append(transports.c.transport_date <= date_to)
    where = and_(*conds)
    total = (await session.execute(select(func.count()).select_from(transports).where(where))).scalar() or 0
    page = select(transports).where(where, *([_after(after)] if after else []))
    rows = await session.execute(page.order_by(
        transports.c.transport_date.desc().nulls_last(), transports.c.first_seen_at.desc(), transports.c.uit,
        transports.c.carrier_cif).limit(limit))
    return int(total), [_record(TransportRecord, r) for r in rows]


def _after(key: TransportKey) -> Any:
    """The rows that come after `key` in list order (transport date descending with none last, first seen
    descending, UIT and carrier ascending)."""
    t = transports.c
    tail = or_(t.first_seen_at < key.first_seen_at,
               and_(t.first_seen_at == key.first_seen_at,
                    or_(t.uit > key.uit, and_(t.uit == key.uit, t.carrier_cif > key.carrier_cif))))
    if key.transport_date is None:
        return and_(t.transport_date.is_(None), tail)
    return or_(t.transport_date < key.transport_date, t.transport_date.is_(None),
               and_(t.transport_date == key.transport_date, tail))


async def find_transport(session: AsyncSession, cifs: Sequence[str], uit: str) -> TransportRecord | None:
    rows = (await session.execute(select(transports).where(transports.c.uit == uit,
                                                           transports.c.carrier_cif.in_(list(cifs)))
                                  .order_by(transports.c.last_seen_at.desc()))).all()
    return _record(TransportRecord, rows[0]) if rows else None


async def history_of(session: AsyncSession, carrier_cif: str, uit: str) -> list[HistoryRecord]:
    rows = await session.execute(select(transport_history).where(
        transport_history.c.carrier_cif == carrier_cif, transport_history.c.uit == uit)
        .order_by(transport_history.c.id))
    return [_record(HistoryRecord, r) for r in rows]


async def events_of(session: AsyncSession, carrier_cif: str, uit: str) -> list[EmittedRecord]:
    rows = await session.execute(select(transport_events).where(
        transport_events.c.carrier_cif == carrier_cif, transport_events.c.uit == uit)
        .order_by(transport_events.c.emitted_at, transport_events.c.kind, transport_events.c.version))
    return [_record(EmittedRecord, r) for r in rows]
