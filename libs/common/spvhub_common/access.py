"""Local read model of who may see which CIF, kept by every service from `portfolio.access-changed`.

Checked on every tenant-scoped request (no synchronous call to portfolio per request).
"""
from __future__ import annotations

from sqlalchemy import Column, DateTime, MetaData, String, Table, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from spvhub_common.errors import Forbidden
from spvhub_common.events.portfolio import AccessChanged


def access_table(metadata: MetaData) -> Table:
    return Table(
        "access_grants", metadata,
        Column("user_id", String(64), primary_key=True),
        Column("cif", String(16), primary_key=True),
        Column("role", String(32), nullable=False),
        Column("via_firm_cif", String(16)),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


async def apply_access_changed(session: AsyncSession, table: Table, ev: AccessChanged) -> None:
    if ev.granted:
        stmt = insert(table).values(user_id=ev.user_id, cif=ev.cif, role=ev.role, via_firm_cif=ev.via_firm_cif)
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["user_id", "cif"],
            set_={"role": ev.role, "via_firm_cif": ev.via_firm_cif, "updated_at": text("now()")}))
    else:
        await session.execute(delete(table).where(table.c.user_id == ev.user_id, table.c.cif == ev.cif))


async def accessible_cifs(session: AsyncSession, table: Table, user_id: str) -> list[str]:
    rows = await session.execute(select(table.c.cif).where(table.c.user_id == user_id).order_by(table.c.cif))
    return [r[0] for r in rows]


async def require_access(session: AsyncSession, table: Table, user_id: str, cif: str) -> str:
    """Return the caller's role on `cif` or raise 403 `no_access_to_company`."""
    role = (await session.execute(select(table.c.role).where(table.c.user_id == user_id, table.c.cif == cif))).scalar()
    if role is None:
        raise Forbidden(f"You have no access to company CIF {cif}.", code="no_access_to_company",
                        details={"cif": cif})
    return str(role)
