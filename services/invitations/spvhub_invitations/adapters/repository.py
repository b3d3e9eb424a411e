"""SQL of the invitations service: the invitation rows and the read models (companies, discovered rights).

Reads return small frozen records (`Invitation`, `Company`), never bare rows or dicts; each selects exactly its
record's columns, so a column added to a table later does not break the reads."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from spvhub_common.access import MANAGERS
from spvhub_common.uow import SqlUnitOfWork
from sqlalchemy import ColumnElement, Select, Table, and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from spvhub_invitations.adapters.orm import access_grants, companies, firm_clients, firm_connections, invitations
from spvhub_invitations.domain import Status

Values = Mapping[str, Any]  # column values to write


@dataclass(frozen=True, slots=True)
class Invitation:
    """One stored invitation (the token itself is never stored: only its nonce and hash)."""

    id: str
    firm_cif: str
    client_cif: str
    client_tax_id: str | None
    name: str
    email: str
    phone: str
    locale: str
    status: str  # a domain.Status value
    token_nonce: str
    token_hash: str
    created_by: str
    created_at: datetime
    sent_at: datetime
    expires_at: datetime
    send_count: int
    claimed_by: str | None
    claimed_at: datetime | None
    answered_at: datetime | None
    expired_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Company:
    """A company as portfolio (or, for its name only, a rights discovery) told this service."""

    cif: str
    name: str
    address: str
    trade_register_no: str
    vat_payer: bool
    provides_accounting_services: bool
    cnp_masked: str | None


def _select(record: type[Invitation] | type[Company], table: Table) -> Select[Any]:
    return select(*(table.c[f.name] for f in fields(record)))


def _invitations() -> Select[Any]:
    return _select(Invitation, invitations)


async def _one_invitation(session: AsyncSession, q: Select[Any]) -> Invitation | None:
    row = (await session.execute(q)).mappings().first()
    return Invitation(**row) if row is not None else None


async def _all_invitations(session: AsyncSession, q: Select[Any]) -> list[Invitation]:
    return [Invitation(**r) for r in (await session.execute(q)).mappings()]


async def commit_unique(uow: SqlUnitOfWork) -> bool:
    """Commit; False when a unique constraint refused the writes (at most one open invitation per firm and
    client), so the caller answers with a conflict instead of a server error."""
    try:
        await uow.commit()
    except IntegrityError:
        return False
    return True


async def upsert_company(session: AsyncSession, values: Values) -> None:
    stmt = insert(companies).values(**values, updated_at=func.now())
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["cif"], set_={**{k: stmt.excluded[k] for k in values if k != "cif"},
                                      "updated_at": func.now()}))


async def remember_names(session: AsyncSession, names: dict[str, str]) -> None:
    """Registry names of companies not registered on the platform yet (from a rights discovery), so an invitation
    names its client before anyone adds it; a registered company's own data is never overwritten."""
    rows = [{"cif": cif, "name": name} for cif, name in names.items() if name]
    if rows:
        await session.execute(insert(companies).values(rows).on_conflict_do_nothing(index_elements=["cif"]))


async def company(session: AsyncSession, cif: str) -> Company | None:
    row = (await session.execute(_select(Company, companies).where(companies.c.cif == cif))).mappings().first()
    return Company(**row) if row is not None else None


async def company_names(session: AsyncSession, cifs: Iterable[str]) -> dict[str, str]:
    cifs = list(set(cifs))
    if not cifs:
        return {}
    rows = await session.execute(select(companies.c.cif, companies.c.name).where(companies.c.cif.in_(cifs)))
    return {r.cif: r.name for r in rows}


async def masked_cnps(session: AsyncSession, cifs: Iterable[str]) -> dict[str, str]:
    """The masked CNP of each natural person among `cifs` whose CNP portfolio announced."""
    keys = list({c for c in cifs if c.startswith("PF")})
    if not keys:
        return {}
    rows = await session.execute(select(companies.c.cif, companies.c.cnp_masked).where(
        companies.c.cif.in_(keys), companies.c.cnp_masked.is_not(None)))
    return {r.cif: r.cnp_masked for r in rows}


async def replace_discovered(session: AsyncSession, connection_id: str, holder_cif: str, services: list[str],
                             cifs: list[str]) -> None:
    """The latest discovery of a connection replaces the previous one (rights gained and lost)."""
    stmt = insert(firm_connections).values(connection_id=connection_id, holder_cif=holder_cif,
                                           services=services, active=True)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["connection_id"], set_={"holder_cif": holder_cif, "services": services, "active": True,
                                                "updated_at": func.now()}))
    clients = sorted({c for c in cifs if c != holder_cif})
    gone = delete(firm_clients).where(firm_clients.c.connection_id == connection_id)
    if clients:
        gone = gone.where(or_(firm_clients.c.client_cif.not_in(clients), firm_clients.c.holder_cif != holder_cif))
    await session.execute(gone)
    if clients:
        await session.execute(insert(firm_clients).values(
            [{"connection_id": connection_id, "client_cif": c, "holder_cif": holder_cif} for c in clients]
        ).on_conflict_do_nothing())


async def deactivate_connection(session: AsyncSession, connection_id: str) -> None:
    await session.execute(update(firm_connections).where(firm_connections.c.connection_id == connection_id)
                          .values(active=False, updated_at=func.now()))


async def has_active_efactura(session: AsyncSession, holder_cif: str) -> bool:
    q = select(func.count()).select_from(firm_connections).where(
        firm_connections.c.holder_cif == holder_cif, firm_connections.c.active.is_(True),
        firm_connections.c.services.any("efactura"))
    return bool((await session.execute(q)).scalar())


async def discovered_clients(session: AsyncSession, holder_cif: str) -> set[str]:
    q = (select(firm_clients.c.client_cif).join(
        firm_connections, firm_connections.c.connection_id == firm_clients.c.connection_id)
        .where(firm_clients.c.holder_cif == holder_cif, firm_connections.c.active.is_(True),
               firm_connections.c.services.any("efactura")).distinct())
    return {r[0] for r in await session.execute(q)}


async def insert_invitation(session: AsyncSession, values: Values) -> None:
    await session.execute(insert(invitations).values(**values))


async def get(session: AsyncSession, invitation_id: str, *, for_update: bool = False) -> Invitation | None:
    q = _invitations().where(invitations.c.id == invitation_id)
    return await _one_invitation(session, q.with_for_update() if for_update else q)


async def by_token_hash(session: AsyncSession, token_hash: str, *, for_update: bool = False
                       ) -> Invitation | None:
    q = _invitations().where(invitations.c.token_hash == token_hash)
    return await _one_invitation(session, q.with_for_update() if for_update else q)


async def set_fields(session: AsyncSession, invitation_id: str, **values: Any) -> None:
    await session.execute(update(invitations).where(invitations.c.id == invitation_id).values(**values))


async def open_or_accepted(session: AsyncSession, firm_cif: str, client_cif: str) -> Invitation | None:
    q = (_invitations().where(invitations.c.firm_cif == firm_cif, invitations.c.client_cif == client_cif,
                                   invitations.c.status.in_([Status.PENDING.value, Status.CLAIMED.value,
                                                              Status.ACCEPTED.value]))
         .order_by(invitations.c.created_at.desc()).limit(1))
    return await _one_invitation(session, q)


def _effective_status_is(status: str, now: datetime) -> ColumnElement[bool]:
    """SQL of domain.effective_status: a pending invitation past its expiry counts as expired."""
    c = invitations.c
    if status == Status.EXPIRED:
        return or_(c.status == Status.EXPIRED.value, and_(c.status == Status.PENDING.value, c.expires_at <= now))
    if status == Status.PENDING:
        return and_(c.status == Status.PENDING.value, c.expires_at > now)
    return c.status == status


async def list_for_firm(session: AsyncSession, firm_cif: str, *, now: datetime, status: str | None = None,
                        limit: int | None = None, after: tuple[datetime, str] | None = None) -> list[Invitation]:
    """Newest first (ties by id), from after the (created_at, id) position `after`."""
    q = _invitations().where(invitations.c.firm_cif == firm_cif)
    if status is not None:
        q = q.where(_effective_status_is(status, now))
    if after is not None:
        at, aid = after
        q = q.where(or_(invitations.c.created_at < at,
                        and_(invitations.c.created_at == at, invitations.c.id > aid)))
    q = q.order_by(invitations.c.created_at.desc(), invitations.c.id)
    if limit is not None:
        q = q.limit(limit)
    return await _all_invitations(session, q)


async def latest_per_client(session: AsyncSession, firm_cif: str) -> dict[str, Invitation]:
    q = (_invitations().where(invitations.c.firm_cif == firm_cif)
         .order_by(invitations.c.client_cif, invitations.c.created_at.desc())
         .distinct(invitations.c.client_cif))
    return {r.client_cif: r for r in await _all_invitations(session, q)}


async def managed_cifs(session: AsyncSession, user_id: str) -> list[str]:
    """The companies the user answers for: verified owner or administrator, as one of its own people."""
    g = access_grants.c
    return [r[0] for r in await session.execute(select(g.cif).where(
        g.user_id == user_id, g.verified.is_(True), g.via_firm_cif.is_(None), g.role.in_(MANAGERS)))]


async def received(session: AsyncSession, user_id: str, managed_cifs: Iterable[str]) -> list[Invitation]:
    """Claimed invitations the user took, or addressed to a company the user answers for."""
    cifs = list(managed_cifs)
    cond = invitations.c.claimed_by == user_id
    if cifs:
        cond = or_(cond, and_(invitations.c.client_cif.in_(cifs), invitations.c.claimed_by.is_not(None)))
    q = _invitations().where(cond).order_by(invitations.c.claimed_at.desc(), invitations.c.id)
    return await _all_invitations(session, q)


async def due_for_expiry(session: AsyncSession, now: datetime, limit: int) -> list[Invitation]:
    q = (_invitations().where(and_(invitations.c.status == Status.PENDING.value, invitations.c.expires_at <= now))
         .order_by(invitations.c.expires_at).limit(limit).with_for_update(skip_locked=True))
    return await _all_invitations(session, q)
