"""An accounting firm's view of its portfolio: the companies its certificate has rights on (with registry data,
invitation and collaboration state) and what still blocks the portfolio.

A client that is a natural person (its inventory entry was a CNP, the platform's id is its person key) is listed
with `kind` "cnp", its name when the platform knows it (else "Persoană fizică") and the CNP masked: the firm is
not one of the person's own members, whatever its certificate's rights."""
from __future__ import annotations

from typing import Any

from spvhub_common.errors import NotFound
from spvhub_common.pii import is_person_key, parse_company_id

from spvhub_portfolio import domain
from spvhub_portfolio.adapters import repository as repo
from spvhub_portfolio.domain import CollaborationStatus, ConnectionStatus
from spvhub_portfolio.handlers.access import require_role
from spvhub_portfolio.handlers.companies import PERSON_DEFAULT_NAME, company_fields, identity, person_fields
from spvhub_portfolio.handlers.deps import Deps


def client_identity(deps: Deps, cif: str, rows: dict[str, repo.Company]) -> dict[str, Any]:
    """`kind` and `tax_id` of a client as its firm is shown them (a natural person's CNP masked)."""
    row = rows.get(cif)
    if row is None:
        return {"kind": "cnp" if is_person_key(cif) else "cif", "tax_id": cif}
    return identity(row, deps.pii, may_see=False)


def client_name(cif: str, reg: dict[str, repo.RegistryEntry], rows: dict[str, repo.Company]) -> str:
    if is_person_key(cif):
        return (rows[cif].name if cif in rows else "") or PERSON_DEFAULT_NAME
    return reg[cif].name if cif in reg else ""


async def list_discovered(deps: Deps, user_id: str, raw_cif: str) -> dict[str, Any]:
    async with deps.uow() as uow:
        firm = parse_company_id(raw_cif)
        await require_role(uow, user_id, firm, direct_only=True)
        rows = [r for r in await repo.discovered_for_holder(uow.session, firm) if r.cif != firm]
        reg = await repo.registry_rows(uow.session, [r.cif for r in rows])
        persons = await repo.company_rows(uow.session, [r.cif for r in rows if is_person_key(r.cif)])
        collabs = await repo.latest_collaborations(uow.session, firm)
        invites = await repo.invitations_of_firm(uow.session, firm)
        items = []
        for r in sorted(rows, key=lambda r: (client_name(r.cif, reg, persons), r.cif)):
            g = reg.get(r.cif)
            c = collabs.get(r.cif)
            inv = invites.get(r.cif)
            fields = person_fields(client_name(r.cif, reg, persons)) if is_person_key(r.cif) else company_fields(g)
            items.append({"cif": r.cif, **client_identity(deps, r.cif, persons), **fields,
                          "registry_found": bool(g and g.found),
                          "discovered_at": r.discovered_at, "confirmed_at": r.confirmed_at,
                          "invited": bool(inv and inv.status in ("sent", "claimed")) or bool(
                              c and c.status == CollaborationStatus.PENDING),
                          "invitation_status": inv.status if inv else None,
                          "collaboration_status": c.status if c else None,
                          "collaborating": bool(c and c.status == CollaborationStatus.ACTIVE)})
        return {"firm_cif": firm, "count": len(items), "companies": items}


async def portfolio_status(deps: Deps, user_id: str, raw_cif: str) -> dict[str, Any]:
    """What blocks the firm's portfolio: the accounting-services flag, an active e-Factura authorization,
    each client's acceptance."""
    async with deps.uow() as uow:
        firm = parse_company_id(raw_cif)
        await require_role(uow, user_id, firm, direct_only=True)
        row = await repo.get_company(uow.session, firm)
        if row is None:
            raise NotFound(f"Company CIF {firm} is not registered.", code="company_not_found")
        blockers: list[dict[str, Any]] = []
        if not row.provides_accounting_services:
            blockers.append({"code": "accounting_services_flag_missing",
                             "message": "The company profile is not marked \"provides accounting services\"; an "
                                        "owner or administrator can set it (PATCH the company)."})
        conns = await repo.connections_of_holder(uow.session, firm)
        ef = [c for c in conns if "efactura" in (c.services or [])]
        active = [c for c in ef if c.status == ConnectionStatus.ACTIVE]
        auth_view: dict[str, Any] = {"status": "missing"}
        if active:
            c = active[0]
            auth_view = {"status": "active", "connection_id": c.connection_id, "holder_name": c.holder_name,
                         "authorized_at": c.authorized_at, "last_discovery_at": c.last_discovery_at,
                         "last_discovery_mode": c.last_discovery_mode, "discovered_count": c.last_discovery_count,
                         "last_discovery_complete": c.last_discovery_complete,
                         "last_discovery_error": c.last_discovery_error}
        elif ef:
            c = ef[0]
            auth_view = {"status": c.status, "connection_id": c.connection_id, "reason": c.status_reason}
        if not active:
            blockers.append({"code": "no_active_efactura_authorization",
                             "message": "There is no active e-Factura authorization with the firm's certificate"
                                        + (f" (the last one is {auth_view['status']})" if ef else "")
                                        + ": authorize e-Factura for the firm's CIF."})
        discovered = {r.cif for r in await repo.discovered_for_holder(uow.session, firm)} - {firm}
        collabs = await repo.latest_collaborations(uow.session, firm)
        invites = await repo.invitations_of_firm(uow.session, firm)
        names = await repo.registry_rows(uow.session, discovered | set(collabs))
        persons = await repo.company_rows(uow.session, [c for c in discovered | set(collabs) if is_person_key(c)])
        clients: list[dict[str, Any]] = []
        for cif in sorted(discovered | set(collabs), key=domain.cif_order):
            collab = collabs.get(cif)
            status = collab.status if collab else None
            inv = invites.get(cif)
            client_blockers = []
            if status != CollaborationStatus.ACTIVE:
                client_blockers.append("client_acceptance_missing" if status == CollaborationStatus.PENDING or (
                    inv and inv.status in ("sent", "claimed")) else "not_invited" if status is None else
                    "collaboration_ended")
            if active and cif not in discovered:
                client_blockers.append("no_spv_rights")
            clients.append({"cif": cif, **client_identity(deps, cif, persons), "name": client_name(cif, names, persons),
                            "collaboration_status": status,
                            "invitation_status": inv.status if inv else None, "spv_rights": cif in discovered,
                            "blocked_by": client_blockers})
        pending = [c["cif"] for c in clients if "client_acceptance_missing" in c["blocked_by"]]
        if pending:
            blockers.append({"code": "client_acceptance_missing", "cifs": pending,
                             "message": f"{len(pending)} client(s) have not accepted the collaboration yet."})
        return {"firm_cif": firm, "ready": not [b for b in blockers if b["code"] != "client_acceptance_missing"],
                "provides_accounting_services": row.provides_accounting_services, "efactura_authorization": auth_view,
                "blockers": blockers, "clients": clients}
