"""SQL of the portfolio service (SQLAlchemy Core on the unit of work's session); no business rules here.

Reads return small frozen records (one per table shape the use cases need), never bare rows or dicts.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypedDict, TypeVar

from sqlalchemy import and_, case, delete, func, literal, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from spvhub_portfolio.adapters.anaf import RegistryRecord
from spvhub_portfolio.adapters.orm import (
    access_published,
    candidates,
    collaborations,
    companies,
    connection_rights,
    connections,
    entitlements_published,
    invitations_seen,
    memberships,
    pending_verifications,
    registry_entries,
    users,
)
from spvhub_portfolio.domain import ConnectionFacts, FirmLink, Membership

Values = Mapping[str, Any]  # column values to write


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """ANAF's public registry data of one CIF, as cached."""

    cif: str
    found: bool
    name: str
    address: str
    trade_register_no: str
    vat_payer: bool
    efactura_registered: bool
    fetched_at: datetime


@dataclass(frozen=True, slots=True)
class Company:
    cif: str
    name: str
    address: str
    trade_register_no: str
    vat_payer: bool
    efactura_registered: bool
    provides_accounting_services: bool
    registry_checked_at: datetime | None
    registered_by: str | None
    created_at: datetime
    updated_at: datetime
    cnp_sealed: str | None = None


@dataclass(frozen=True, slots=True)
class Member:
    """One membership of a company, as the members list shows it."""

    user_id: str
    role: str
    created_at: datetime
    verified_at: datetime | None
    verified_via: str | None


@dataclass(frozen=True, slots=True)
class UserMembership:
    """One company a user is a direct member of."""

    cif: str
    role: str
    verified_at: datetime | None


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    email: str
    name: str
    email_verified: bool


@dataclass(frozen=True, slots=True)
class PublishedAccess:
    """What portfolio last published for one (user, CIF); `verified` is None when published before verification
    existed."""

    role: str
    via_firm_cif: str | None
    verified: bool | None
    can_file: bool | None


class EntitlementSnapshot(TypedDict):
    """One entitled connection as published (stored as JSON, compared as published)."""

    connection_id: str
    holder_cif: str
    services: list[str]
    may_file: bool


@dataclass(frozen=True, slots=True)
class Connection:
    connection_id: str
    holder_cif: str
    user_id: str
    holder_name: str
    certificate_serial: str
    services: list[str]
    status: str
    status_reason: str
    authorized_at: datetime | None
    last_discovery_at: datetime | None
    last_discovery_mode: str | None
    last_discovery_complete: bool | None
    last_discovery_error: str | None
    last_discovery_count: int | None


@dataclass(frozen=True, slots=True)
class DiscoveredRight:
    """A CIF some connection of a holder has SPV rights on: first seen, last confirmed."""

    cif: str
    discovered_at: datetime
    confirmed_at: datetime


@dataclass(frozen=True, slots=True)
class Collaboration:
    id: str
    firm_cif: str
    client_cif: str
    status: str
    invitation_id: str | None
    created_at: datetime
    activated_at: datetime | None
    ended_at: datetime | None
    ended_by: str | None
    end_reason: str | None
    may_file: bool


@dataclass(frozen=True, slots=True)
class InvitationSeen:
    invitation_id: str
    firm_cif: str
    client_cif: str
    status: str
    updated_at: datetime


R = TypeVar("R")


_NAMES: dict[type, tuple[str, ...]] = {}


def _record(cls: type[R], row: Any) -> R:
    names = _NAMES.get(cls) or _NAMES.setdefault(cls, tuple(f.name for f in fields(cls)))  # type: ignore[arg-type]
    m = row._mapping
    return cls(**{n: m[n] for n in names})


def _records(cls: type[R], result: Any) -> list[R]:
    return [_record(cls, r) for r in result]


# -- registry cache -----------------------------------------------------------------------------------
async def registry_rows(s: AsyncSession, cifs: Iterable[str]) -> dict[str, RegistryEntry]:
    cifs = list(cifs)
    if not cifs:
        return {}
    res = await s.execute(select(registry_entries).where(registry_entries.c.cif.in_(cifs)))
    return {r.cif: r for r in _records(RegistryEntry, res)}


async def save_registry(s: AsyncSession, recs: Iterable[RegistryRecord], at: datetime) -> None:
    values = [dict(cif=r.cif, found=r.found, name=r.name, address=r.address, trade_register_no=r.trade_register_no,
                   vat_payer=r.vat_payer, efactura_registered=r.efactura_registered, raw=r.raw, fetched_at=at)
              for r in recs]
    if not values:
        return
    stmt = insert(registry_entries).values(values)
    await s.execute(stmt.on_conflict_do_update(index_elements=["cif"], set_={
        k: stmt.excluded[k] for k in ("found", "name", "address", "trade_register_no", "vat_payer",
                                      "efactura_registered", "raw", "fetched_at")}))


# -- companies and memberships --------------------------------------------------------------------------
async def get_company(s: AsyncSession, cif: str, *, lock: bool = False) -> Company | None:
    q = select(companies).where(companies.c.cif == cif)
    if lock:
        q = q.with_for_update()
    r = (await s.execute(q)).first()
    return _record(Company, r) if r else None


async def company_rows(s: AsyncSession, cifs: Iterable[str]) -> dict[str, Company]:
    cifs = list(cifs)
    if not cifs:
        return {}
    res = await s.execute(select(companies).where(companies.c.cif.in_(cifs)))
    return {r.cif: r for r in _records(Company, res)}


async def insert_company(s: AsyncSession, values: Values) -> bool:
    res = await s.execute(insert(companies).values(**values).on_conflict_do_nothing().returning(companies.c.cif))
    return res.scalar() is not None


async def update_company(s: AsyncSession, cif: str, values: Values) -> None:
    await s.execute(update(companies).where(companies.c.cif == cif).values(**values))


async def sealed_cnps(s: AsyncSession, cifs: Iterable[str]) -> dict[str, str]:
    """The sealed CNP of each person key among `cifs` that has one."""
    keys = [c for c in cifs if c.startswith("PF")]
    if not keys:
        return {}
    res = await s.execute(select(companies.c.cif, companies.c.cnp_sealed).where(
        companies.c.cif.in_(keys), companies.c.cnp_sealed.is_not(None)))
    return {r.cif: r.cnp_sealed for r in res}


async def all_company_cifs(s: AsyncSession) -> list[str]:
    return [r[0] for r in await s.execute(select(companies.c.cif))]


async def companies_due_for_registry(s: AsyncSession, before: datetime, limit: int) -> list[Company]:
    # a person key (natural person, `PF...`) is not in ANAF's VAT registry: never asked for
    q = select(companies).where(or_(companies.c.registry_checked_at.is_(None),
                                    companies.c.registry_checked_at < before),
                                ~companies.c.cif.like("PF%")).order_by(
        companies.c.registry_checked_at.nulls_first()).limit(limit)
    return _records(Company, await s.execute(q))


async def direct_membership(s: AsyncSession, user_id: str, cif: str) -> Membership | None:
    r = (await s.execute(select(memberships.c.role, memberships.c.verified_at).where(
        memberships.c.user_id == user_id, memberships.c.cif == cif))).first()
    return Membership(r.role, r.verified_at is not None) if r else None


async def members(s: AsyncSession, cif: str, *, verified: bool | None = None,
                  after: tuple[datetime, str] | None = None, limit: int | None = None) -> list[Member]:
    """Members in the order they joined; `verified` keeps only verified (True) or pending (False) ones, `after` starts
    past that (created_at, user_id)."""
    q = select(memberships).where(memberships.c.cif == cif)
    if verified is not None:
        q = q.where(memberships.c.verified_at.is_not(None) if verified else memberships.c.verified_at.is_(None))
    if after is not None:
        q = q.where(tuple_(memberships.c.created_at, memberships.c.user_id) > tuple_(literal(after[0]),
                                                                                      literal(after[1])))
    q = q.order_by(memberships.c.created_at, memberships.c.user_id)
    if limit is not None:
        q = q.limit(limit)
    return _records(Member, await s.execute(q))


async def count_members(s: AsyncSession, cif: str, *, verified: bool | None = None) -> int:
    q = select(func.count()).select_from(memberships).where(memberships.c.cif == cif)
    if verified is not None:
        q = q.where(memberships.c.verified_at.is_not(None) if verified else memberships.c.verified_at.is_(None))
    return int((await s.execute(q)).scalar_one())


async def verified_people(s: AsyncSession, cif: str, roles: Iterable[str] | None = None) -> list[str]:
    q = select(memberships.c.user_id).where(memberships.c.cif == cif, memberships.c.verified_at.is_not(None))
    if roles is not None:
        q = q.where(memberships.c.role.in_(list(roles)))
    return [r[0] for r in await s.execute(q.order_by(memberships.c.user_id))]


async def has_verified_owner(s: AsyncSession, cif: str) -> bool:
    q = select(memberships.c.user_id).where(memberships.c.cif == cif, memberships.c.role == "owner",
                                            memberships.c.verified_at.is_not(None)).limit(1)
    return (await s.execute(q)).first() is not None


async def upsert_member(s: AsyncSession, cif: str, user_id: str, role: str, *, verified_via: str | None = None,
                        at: datetime | None = None) -> None:
    """Add or change a membership; `verified_via` verifies it (a verified membership never becomes unverified)."""
    values: dict[str, Any] = {"cif": cif, "user_id": user_id, "role": role}
    update_set: dict[str, Any] = {"role": role}
    if verified_via:
        values |= {"verified_at": at, "verified_via": verified_via}
        update_set |= {"verified_at": func.coalesce(memberships.c.verified_at, at),
                       "verified_via": func.coalesce(memberships.c.verified_via, verified_via)}
    stmt = insert(memberships).values(**values)
    await s.execute(stmt.on_conflict_do_update(index_elements=["cif", "user_id"], set_=update_set))


async def delete_member(s: AsyncSession, cif: str, user_id: str) -> None:
    await s.execute(delete(memberships).where(memberships.c.cif == cif, memberships.c.user_id == user_id))


async def user_memberships(s: AsyncSession, user_id: str) -> list[UserMembership]:
    q = select(memberships.c.cif, memberships.c.role, memberships.c.verified_at).where(memberships.c.user_id == user_id)
    return _records(UserMembership, await s.execute(q))


def _verified_firm_links() -> Any:
    return (select(memberships.c.user_id, collaborations.c.firm_cif, collaborations.c.may_file,
                   collaborations.c.client_cif)
            .join(collaborations, collaborations.c.firm_cif == memberships.c.cif)
            .where(collaborations.c.status == "active", memberships.c.verified_at.is_not(None)))


async def firms_of_user_with_active_collaboration(s: AsyncSession, user_id: str, client_cif: str) -> list[FirmLink]:
    """The firms the user is a verified member of that have an active collaboration with the client."""
    q = _verified_firm_links().where(memberships.c.user_id == user_id, collaborations.c.client_cif == client_cif)
    return [FirmLink(r.firm_cif, r.may_file) for r in await s.execute(q)]


# -- users ------------------------------------------------------------------------------------------------
async def upsert_user(s: AsyncSession, user_id: str, email: str, name: str, email_verified: bool = True) -> None:
    stmt = insert(users).values(user_id=user_id, email=email, name=name, email_verified=email_verified)
    # a verification that arrived first (another topic) is never undone by a late registration event
    await s.execute(stmt.on_conflict_do_update(index_elements=["user_id"], set_={
        "email": case((users.c.email_verified & ~stmt.excluded.email_verified, users.c.email),
                      else_=stmt.excluded.email),
        "name": name, "email_verified": users.c.email_verified | stmt.excluded.email_verified}))


async def set_email_verified(s: AsyncSession, user_id: str, email: str) -> None:
    stmt = insert(users).values(user_id=user_id, email=email, name="", email_verified=True)
    await s.execute(stmt.on_conflict_do_update(index_elements=["user_id"], set_={"email": email,
                                                                                 "email_verified": True}))


async def email_unverified(s: AsyncSession, user_id: str) -> bool:
    """True only when auth said this person's e-mail is not verified (a person portfolio has not heard of yet, or
    an account from before e-mail verification, is not held back)."""
    v = (await s.execute(select(users.c.email_verified).where(users.c.user_id == user_id))).scalar()
    return v is False


async def record_pending_verification(s: AsyncSession, user_id: str, cif: str, via: str, at: datetime) -> None:
    await s.execute(insert(pending_verifications).values(user_id=user_id, cif=cif, via=via, recorded_at=at)
                    .on_conflict_do_nothing())


async def take_pending_verifications(s: AsyncSession, user_id: str) -> list[tuple[str, str]]:
    rows = (await s.execute(delete(pending_verifications).where(pending_verifications.c.user_id == user_id)
                            .returning(pending_verifications.c.cif, pending_verifications.c.via))).all()
    return sorted((r.cif, r.via) for r in rows)


async def user_by_email(s: AsyncSession, email: str) -> User | None:
    r = (await s.execute(select(users).where(func.lower(users.c.email) == email.strip().lower()))).first()
    return _record(User, r) if r else None


async def users_by_id(s: AsyncSession, user_ids: Iterable[str]) -> dict[str, User]:
    ids = list(user_ids)
    if not ids:
        return {}
    return {r.user_id: r for r in _records(User, await s.execute(select(users).where(users.c.user_id.in_(ids))))}


# -- access as published ----------------------------------------------------------------------------------
async def desired_access(s: AsyncSession, cif: str) -> tuple[dict[str, Membership], dict[str, list[FirmLink]]]:
    """(direct memberships by user, verified firm links with an active collaboration by user) for one CIF."""
    direct = {r.user_id: Membership(r.role, r.verified_at is not None) for r in await s.execute(
        select(memberships.c.user_id, memberships.c.role, memberships.c.verified_at).where(memberships.c.cif == cif))}
    via: dict[str, list[FirmLink]] = {}
    for r in await s.execute(_verified_firm_links().where(collaborations.c.client_cif == cif)):
        via.setdefault(r.user_id, []).append(FirmLink(r.firm_cif, r.may_file))
    return direct, via


async def published_access(s: AsyncSession, cif: str) -> dict[str, PublishedAccess]:
    q = select(access_published).where(access_published.c.cif == cif).with_for_update()
    return {r.user_id: _record(PublishedAccess, r) for r in await s.execute(q)}


async def set_published(s: AsyncSession, user_id: str, cif: str, role: str, via: str | None, verified: bool,
                        can_file: bool) -> None:
    values = {"role": role, "via_firm_cif": via, "verified": verified, "can_file": can_file}
    stmt = insert(access_published).values(user_id=user_id, cif=cif, **values)
    await s.execute(stmt.on_conflict_do_update(index_elements=["user_id", "cif"],
                                               set_={**values, "updated_at": func.now()}))


async def delete_published(s: AsyncSession, user_id: str, cif: str) -> None:
    await s.execute(delete(access_published).where(access_published.c.user_id == user_id,
                                                   access_published.c.cif == cif))


async def stale_access_cifs(s: AsyncSession, limit: int) -> list[str]:
    """CIFs whose access was published before verification existed (to be published again)."""
    q = select(access_published.c.cif).where(access_published.c.verified.is_(None)).distinct().limit(limit)
    return [r[0] for r in await s.execute(q)]


# -- entitlements -----------------------------------------------------------------------------------------
async def connection_facts_of(s: AsyncSession, cifs: Iterable[str]) -> dict[str, list[ConnectionFacts]]:
    """For each CIF, the connections held by it or whose certificate has rights on it (rights reduced to that
    CIF): two statements whatever the number of CIFs."""
    wanted = sorted(set(cifs))
    out: dict[str, list[ConnectionFacts]] = {c: [] for c in wanted}
    if not wanted:
        return out
    pairs = {(r.connection_id, r.cif) for r in await s.execute(
        select(connection_rights.c.connection_id, connection_rights.c.cif).where(connection_rights.c.cif.in_(wanted)))}
    q = select(connections).where(or_(connections.c.holder_cif.in_(wanted),
                                      connections.c.connection_id.in_(sorted({c for c, _ in pairs}))))
    for r in await s.execute(q):
        covered = {cif for c, cif in pairs if c == r.connection_id}
        for cif in covered | ({r.holder_cif} & out.keys()):
            out[cif].append(ConnectionFacts(
                connection_id=r.connection_id, holder_cif=r.holder_cif, active=r.status == "active",
                services=tuple(r.services or ["efactura"]), rights=frozenset({cif} if cif in covered else ()),
                authorized_at=r.authorized_at.isoformat() if r.authorized_at else ""))
    return out


async def connection_facts_for(s: AsyncSession, cif: str) -> list[ConnectionFacts]:
    """The connections held by `cif` or whose certificate has rights on it (rights reduced to `cif`)."""
    return (await connection_facts_of(s, [cif]))[cif]


async def active_firms_of_clients(s: AsyncSession, client_cifs: Iterable[str]) -> dict[str, dict[str, bool]]:
    """`{firm: {client: may_file}}` over the active collaborations of the given clients."""
    wanted = sorted(set(client_cifs))
    out: dict[str, dict[str, bool]] = {}
    if not wanted:
        return out
    q = select(collaborations.c.firm_cif, collaborations.c.client_cif, collaborations.c.may_file).where(
        collaborations.c.client_cif.in_(wanted), collaborations.c.status == "active")
    for r in await s.execute(q):
        out.setdefault(r.firm_cif, {})[r.client_cif] = r.may_file
    return out


async def published_entitlements_of(s: AsyncSession, cifs: Iterable[str]) -> dict[str, list[EntitlementSnapshot]]:
    """The snapshots last published, locked in CIF order (the order the one-CIF-at-a-time version took them); a CIF
    never published is absent."""
    wanted = sorted(set(cifs))
    if not wanted:
        return {}
    q = (select(entitlements_published.c.cif, entitlements_published.c.connections)
         .where(entitlements_published.c.cif.in_(wanted)).order_by(entitlements_published.c.cif).with_for_update())
    return {r.cif: list(r.connections) for r in await s.execute(q)}


async def set_published_entitlements(s: AsyncSession, cif: str,
                                     snapshot: list[EntitlementSnapshot]) -> None:
    stmt = insert(entitlements_published).values(cif=cif, connections=snapshot)
    await s.execute(stmt.on_conflict_do_update(index_elements=["cif"],
                                               set_={"connections": snapshot, "updated_at": func.now()}))


async def cifs_needing_entitlements(s: AsyncSession, limit: int) -> list[str]:
    """CIFs a connection holds or covers for which no entitlement was ever published (after an upgrade)."""
    known = select(entitlements_published.c.cif)
    q = (select(connection_rights.c.cif).where(connection_rights.c.cif.not_in(known))
         .union(select(connections.c.holder_cif).where(connections.c.holder_cif.not_in(known)))).limit(limit)
    return [r[0] for r in await s.execute(q)]


# -- connections and rights ----------------------------------------------------------------------------
async def upsert_connection(s: AsyncSession, values: Values) -> None:
    stmt = insert(connections).values(**values)
    keys = [k for k in values if k != "connection_id"]
    await s.execute(stmt.on_conflict_do_update(index_elements=["connection_id"],
                                               set_={**{k: stmt.excluded[k] for k in keys}, "updated_at": func.now()}))


async def get_connection(s: AsyncSession, connection_id: str, *, lock: bool = False) -> Connection | None:
    q = select(connections).where(connections.c.connection_id == connection_id)
    if lock:
        q = q.with_for_update()
    r = (await s.execute(q)).first()
    return _record(Connection, r) if r else None


async def set_connection(s: AsyncSession, connection_id: str, values: Values) -> None:
    await s.execute(update(connections).where(connections.c.connection_id == connection_id)
                    .values(**values, updated_at=func.now()))


async def connections_of_holder(s: AsyncSession, holder_cif: str) -> list[Connection]:
    q = select(connections).where(connections.c.holder_cif == holder_cif).order_by(
        connections.c.authorized_at.desc().nulls_last())
    return _records(Connection, await s.execute(q))


async def active_connections(s: AsyncSession) -> list[Connection]:
    return _records(Connection, await s.execute(select(connections).where(connections.c.status == "active")))


async def rights_of(s: AsyncSession, connection_id: str) -> set[str]:
    q = select(connection_rights.c.cif).where(connection_rights.c.connection_id == connection_id)
    return {r[0] for r in await s.execute(q)}


async def replace_rights(s: AsyncSession, connection_id: str, gained: list[str], lost: list[str],
                         confirmed: list[str], at: datetime) -> None:
    if lost:
        await s.execute(delete(connection_rights).where(connection_rights.c.connection_id == connection_id,
                                                        connection_rights.c.cif.in_(lost)))
    if gained:
        await s.execute(insert(connection_rights).values(
            [dict(connection_id=connection_id, cif=c, discovered_at=at, confirmed_at=at) for c in gained])
            .on_conflict_do_nothing())
    if confirmed:
        await s.execute(update(connection_rights).where(connection_rights.c.connection_id == connection_id,
                                                        connection_rights.c.cif.in_(confirmed))
                        .values(confirmed_at=at))


async def discovered_for_holder(s: AsyncSession, holder_cif: str) -> list[DiscoveredRight]:
    """CIFs discovered through any non-revoked connection of the holder, with when they were first seen."""
    q = (select(connection_rights.c.cif, func.min(connection_rights.c.discovered_at).label("discovered_at"),
                func.max(connection_rights.c.confirmed_at).label("confirmed_at"))
         .join(connections, connections.c.connection_id == connection_rights.c.connection_id)
         .where(connections.c.holder_cif == holder_cif, connections.c.status != "revoked")
         .group_by(connection_rights.c.cif))
    return _records(DiscoveredRight, await s.execute(q))


# -- candidates ------------------------------------------------------------------------------------------
async def add_candidates(s: AsyncSession, firm_cif: str, cifs: list[str], user_id: str) -> int:
    added = 0
    for i in range(0, len(cifs), 5000):
        # one array parameter per chunk, unnested by PostgreSQL: three parameters whatever the size (a VALUES list
        # would be 15,000, and compiling it costs the event loop hundreds of milliseconds)
        res = await s.execute(text(
            "INSERT INTO candidates (firm_cif, cif, added_by) SELECT :firm, c, :user FROM unnest(CAST(:cifs AS text[]))"
            " AS c ON CONFLICT DO NOTHING RETURNING cif"),
            {"firm": firm_cif, "user": user_id, "cifs": cifs[i:i + 5000]})
        added += len(res.all())
    return added


async def candidates_of(s: AsyncSession, firm_cif: str) -> list[str]:
    q = select(candidates.c.cif).where(candidates.c.firm_cif == firm_cif).order_by(candidates.c.cif)
    return [r[0] for r in await s.execute(q)]


# -- collaborations -----------------------------------------------------------------------------------
async def open_collaboration(s: AsyncSession, firm_cif: str, client_cif: str, *,
                             lock: bool = False) -> Collaboration | None:
    q = select(collaborations).where(collaborations.c.firm_cif == firm_cif, collaborations.c.client_cif == client_cif,
                                     collaborations.c.status != "ended")
    if lock:
        q = q.with_for_update()
    r = (await s.execute(q)).first()
    return _record(Collaboration, r) if r else None


async def insert_collaboration(s: AsyncSession, values: Values) -> bool:
    res = await s.execute(insert(collaborations).values(**values).on_conflict_do_nothing()
                          .returning(collaborations.c.id))
    return res.scalar() is not None


async def set_collaboration(s: AsyncSession, collab_id: str, values: Values) -> None:
    await s.execute(update(collaborations).where(collaborations.c.id == collab_id).values(**values))


async def collaborations_of(s: AsyncSession, cif: str, *, include_ended: bool = True) -> list[Collaboration]:
    cond = or_(collaborations.c.firm_cif == cif, collaborations.c.client_cif == cif)
    if not include_ended:
        cond = and_(cond, collaborations.c.status != "ended")
    q = select(collaborations).where(cond).order_by(collaborations.c.created_at.desc())
    return _records(Collaboration, await s.execute(q))


async def open_collaborations_of_firms(s: AsyncSession, firm_cifs: list[str]) -> list[Collaboration]:
    if not firm_cifs:
        return []
    q = select(collaborations).where(collaborations.c.firm_cif.in_(firm_cifs), collaborations.c.status != "ended")
    return _records(Collaboration, await s.execute(q))


async def active_client_cifs(s: AsyncSession, firm_cif: str) -> list[str]:
    q = select(collaborations.c.client_cif).where(collaborations.c.firm_cif == firm_cif,
                                                  collaborations.c.status == "active")
    return [r[0] for r in await s.execute(q)]


async def latest_collaborations(s: AsyncSession, firm_cif: str) -> dict[str, Collaboration]:
    """The most recent collaboration of the firm with each client."""
    out: dict[str, Collaboration] = {}
    q = select(collaborations).where(collaborations.c.firm_cif == firm_cif).order_by(collaborations.c.created_at)
    for r in _records(Collaboration, await s.execute(q)):
        prev = out.get(r.client_cif)
        if prev is None or prev.status == "ended" or r.status != "ended":
            out[r.client_cif] = r
    return out


# -- invitations seen -------------------------------------------------------------------------------------
async def upsert_invitation(s: AsyncSession, invitation_id: str, firm_cif: str, client_cif: str, status: str,
                            at: datetime) -> None:
    stmt = insert(invitations_seen).values(invitation_id=invitation_id, firm_cif=firm_cif, client_cif=client_cif,
                                           status=status, updated_at=at)
    await s.execute(stmt.on_conflict_do_update(index_elements=["invitation_id"],
                                               set_={"status": status, "updated_at": at}))


async def invitations_of_firm(s: AsyncSession, firm_cif: str) -> dict[str, InvitationSeen]:
    q = select(invitations_seen).where(invitations_seen.c.firm_cif == firm_cif).order_by(invitations_seen.c.updated_at)
    return {r.client_cif: r for r in _records(InvitationSeen, await s.execute(q))}
