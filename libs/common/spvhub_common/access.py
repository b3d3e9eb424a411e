"""Local read model of who may see which CIF, kept by every service from `portfolio.access-changed`.

Checked on every tenant-scoped request (no synchronous call to portfolio per request). A row says what the user is
for the company (`role`, `via_firm_cif` for a firm's users reaching a client), whether the user has proven control
(`verified`) and whether they may act at ANAF in the company's name (`can_file`). Only verified rows give access to
anything that came from ANAF; an unverified member may only do what leads to verification (authorize, delegate).
"""
from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy import Boolean, Column, DateTime, MetaData, String, Table, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from spvhub_common.errors import Forbidden
from spvhub_common.events.portfolio import AccessChanged

MANAGERS = ("owner", "admin")


@dataclass(frozen=True)
class KeyScope:
    """The restrictions of the API key this request came with (spvhub_common.security sets it): the key acts with
    its creator's grants (`user_id`), only on `companies`, only for `permissions`, and only while the creator still
    manages the company (a direct owner/admin, or an owner/admin of the firm that reaches it)."""

    key_id: str
    user_id: str
    companies: frozenset[str]
    permissions: frozenset[str]


key_scope: ContextVar[KeyScope | None] = ContextVar("spvhub_key_scope", default=None)


def _scope_for(user_id: str) -> KeyScope | None:
    s = key_scope.get()
    return s if s is not None and s.user_id == user_id else None


def access_table(metadata: MetaData) -> Table:
    return Table(
        "access_grants", metadata,
        Column("user_id", String(64), primary_key=True),
        Column("cif", String(16), primary_key=True),
        Column("role", String(32), nullable=False),
        Column("via_firm_cif", String(16)),
        Column("verified", Boolean, nullable=False, server_default=text("true")),
        Column("can_file", Boolean, nullable=False, server_default=text("false")),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


@dataclass(frozen=True)
class Grant:
    role: str
    via_firm_cif: str | None
    verified: bool
    can_file: bool

    @property
    def direct(self) -> bool:
        return self.via_firm_cif is None


async def apply_access_changed(session: AsyncSession, table: Table, ev: AccessChanged) -> None:
    if ev.granted:
        values = {"role": ev.role, "via_firm_cif": ev.via_firm_cif, "verified": ev.verified, "can_file": ev.can_file}
        stmt = insert(table).values(user_id=ev.user_id, cif=ev.cif, **values)
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["user_id", "cif"], set_={**values, "updated_at": text("now()")}))
    else:
        await session.execute(delete(table).where(table.c.user_id == ev.user_id, table.c.cif == ev.cif))


async def accessible_cifs(session: AsyncSession, table: Table, user_id: str) -> list[str]:
    """The CIFs whose ANAF data the user may see (verified rows only); for an API key, only its companies the
    creator still manages."""
    q = select(table.c.cif, table.c.role, table.c.via_firm_cif).where(table.c.user_id == user_id,
                                                                        table.c.verified.is_(True))
    scope = _scope_for(user_id)
    if scope is not None:
        q = q.where(table.c.cif.in_(sorted(scope.companies)))
    rows = (await session.execute(q.order_by(table.c.cif))).all()
    if scope is None:
        return [r.cif for r in rows]
    out = []
    for r in rows:
        g = Grant(role=str(r.role), via_firm_cif=r.via_firm_cif, verified=True, can_file=False)
        if await _creator_manages(session, table, user_id, g):
            out.append(r.cif)
    return out


async def _creator_manages(session: AsyncSession, table: Table, user_id: str, g: Grant) -> bool:
    if g.direct:
        return g.role in MANAGERS
    firm = await grant_of(session, table, user_id, g.via_firm_cif or "")
    return firm is not None and firm.direct and firm.verified and firm.role in MANAGERS


async def verified_users(session: AsyncSession, table: Table, cif: str, *, direct_only: bool = False,
                         roles: tuple[str, ...] | None = None) -> list[str]:
    """The users who may hear about `cif`'s ANAF data: verified, optionally only its own people or some roles."""
    q = select(table.c.user_id).where(table.c.cif == cif, table.c.verified.is_(True))
    if direct_only:
        q = q.where(table.c.via_firm_cif.is_(None))
    if roles is not None:
        q = q.where(table.c.role.in_(roles))
    return [r[0] for r in await session.execute(q.order_by(table.c.user_id))]


def no_access(cif: str) -> Forbidden:
    return Forbidden(f"You have no access to company CIF {cif}.", code="no_access_to_company", details={"cif": cif},
                     messages={"ro": f"Nu aveți acces la compania cu CIF {cif}."})


def not_verified(cif: str) -> Forbidden:
    return Forbidden(
        f"Company CIF {cif} is not verified for you yet, so nothing that comes from ANAF is shown. To get verified: "
        "authorize ANAF access for the company with a certificate that has SPV rights on it (or send the "
        "accountant a delegation link), or ask a verified owner or administrator to add you.",
        code="company_not_verified", details={"cif": cif, "how": ["anaf_authorization", "delegation_link",
                                                                   "owner_adds_you"]},
        messages={"ro": f"Compania cu CIF {cif} nu este încă verificată pentru dumneavoastră, așa că nu afișăm nimic "
                        "din ce vine de la ANAF. Pentru verificare: autorizați accesul ANAF pentru companie cu un "
                        "certificat care are drepturi SPV pe ea (sau trimiteți contabilului un link de delegare), ori "
                        "cereți unui proprietar sau administrator verificat să vă adauge."})


def insufficient_role(cif: str, role: str, required: tuple[str, ...]) -> Forbidden:
    return Forbidden(
        f"Your role ({role}) on CIF {cif} does not allow this; an owner or administrator of the company can do it.",
        code="insufficient_role", details={"cif": cif, "role": role, "required": list(required)},
        messages={"ro": f"Rolul dumneavoastră ({role}) pe CIF {cif} nu permite această acțiune; o poate face un "
                        "proprietar sau un administrator al companiei."})


def filing_not_allowed(cif: str) -> Forbidden:
    return Forbidden(
        f"You may not file in the name of CIF {cif}: an owner or administrator of the company can, and an accounting "
        "firm only when the client allowed it on the collaboration.", code="filing_not_allowed",
        details={"cif": cif},
        messages={"ro": f"Nu puteți transmite documente în numele CIF {cif}: o pot face proprietarii și "
                        "administratorii companiei, iar o firmă de contabilitate doar dacă clientul i-a permis acest "
                        "lucru în colaborare."})


async def grant_of(session: AsyncSession, table: Table, user_id: str, cif: str) -> Grant | None:
    row = (await session.execute(select(table.c.role, table.c.via_firm_cif, table.c.verified, table.c.can_file)
                                 .where(table.c.user_id == user_id, table.c.cif == cif))).first()
    if row is None:
        return None
    return Grant(role=str(row.role), via_firm_cif=row.via_firm_cif, verified=bool(row.verified),
                 can_file=bool(row.can_file))


async def require_grant(session: AsyncSession, table: Table, user_id: str, cif: str, *,
                        roles: tuple[str, ...] | None = None, direct_only: bool = False,
                        allow_unverified: bool = False, file: bool = False) -> Grant:
    """The caller's grant on `cif`, or 403: `no_access_to_company` (no row, or a firm's user where only the
    company's own people may act), `company_not_verified`, `insufficient_role`, `filing_not_allowed`."""
    scope = _scope_for(user_id)
    if scope is not None and cif not in scope.companies:
        raise no_access(cif)
    g = await grant_of(session, table, user_id, cif)
    if g is None or (direct_only and not g.direct):
        raise no_access(cif)
    if scope is not None and not await _creator_manages(session, table, user_id, g):
        # The person who made the key no longer manages this company: the key does not outlive that.
        raise insufficient_role(cif, g.role, MANAGERS)
    if scope is not None and file and "file" not in scope.permissions:
        raise Forbidden("This API key lacks the 'file' permission.", code="api_key_permission_missing",
                        details={"permission": "file", "cif": cif},
                        messages={"ro": "Această cheie API nu are permisiunea „file”."})
    if not g.verified and not allow_unverified:
        raise not_verified(cif)
    if roles is not None and g.role not in roles:
        raise insufficient_role(cif, g.role, roles)
    if file and not g.can_file:
        raise filing_not_allowed(cif)
    return g


async def require_access(session: AsyncSession, table: Table, user_id: str, cif: str) -> str:
    """Return the caller's role on `cif` (verified) or raise 403 (`no_access_to_company`, `company_not_verified`)."""
    return (await require_grant(session, table, user_id, cif)).role
