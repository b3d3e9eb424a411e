"""Which ANAF connections may act for each CIF (`portfolio.entitlements-changed`), who is told when the last one
goes (`portfolio.access-lost`), and the catch-up after an upgrade."""
from __future__ import annotations

from spvhub_common.events.portfolio import AccessLost, EntitledConnection, EntitlementsChanged
from spvhub_common.uow import SqlUnitOfWork

from spvhub_portfolio import domain
from spvhub_portfolio.adapters import repository as repo
from spvhub_portfolio.handlers.access import sync_access

BATCH = 1000  # CIFs whose facts are read together: four statements each, with bounded parameter lists


async def sync_entitlements(uow: SqlUnitOfWork, cifs: set[str] | list[str], *, reason: str = "",
                            message: str = "", quiet: bool = False, force: set[str] | None = None) -> None:
    """Publish `portfolio.entitlements-changed` for every CIF whose entitled connections changed. When the last one
    goes, the company's sync stops: its own verified people (and, for a client, the managers of the firm whose
    connection it was) are told once, with the reason — unless `quiet` (another notice already tells them).

    The facts of many CIFs are read together (a connection's change can touch hundreds of clients).

    A person key's event carries its CNP sealed (`cnp_sealed`), what the services that call ANAF for it unseal;
    `force` publishes those CIFs again even when their connections did not change (the CNP became known)."""
    wanted = sorted(set(cifs))
    for i in range(0, len(wanted), BATCH):
        await _sync_entitlements_of(uow, wanted[i:i + BATCH], reason, message, quiet, force or set())


async def _sync_entitlements_of(uow: SqlUnitOfWork, wanted: list[str], reason: str, message: str,
                                quiet: bool, force: set[str]) -> None:
    facts = await repo.connection_facts_of(uow.session, wanted)
    firms = await repo.active_firms_of_clients(uow.session, wanted)
    published = await repo.published_entitlements_of(uow.session, wanted)
    sealed = await repo.sealed_cnps(uow.session, wanted)
    for cif in wanted:
        now: list[repo.EntitlementSnapshot] = [
            {"connection_id": e.connection_id, "holder_cif": e.holder_cif, "services": list(e.services),
             "may_file": e.may_file} for e in domain.entitled_connections(cif, facts[cif], firms)]
        before = published.get(cif)
        if before == now and cif not in force:
            continue
        await repo.set_published_entitlements(uow.session, cif, now)
        if before is None and not now:
            continue  # nobody was ever told anything about this CIF: nothing to say now either
        uow.publish(EntitlementsChanged(cif=cif, connections=[EntitledConnection(**c) for c in now],
                                        cnp_sealed=sealed.get(cif)))
        if before and not now and not quiet:
            holders = sorted({c["holder_cif"] for c in before} - {cif})
            notify = set(await repo.verified_people(uow.session, cif))
            for h in holders:
                notify |= set(await repo.verified_people(uow.session, h, domain.MANAGERS))
            last = before[0]
            uow.publish(AccessLost(
                cif=cif, connection_id=last["connection_id"], reason=reason or "no_entitled_connection",
                holder_cif=last["holder_cif"], notify_user_ids=sorted(notify),
                message=message or f"No ANAF authorization may act for CIF {cif} any more, so its e-Factura invoices "
                                   "are no longer downloaded. Authorize ANAF access again for the company (or ask "
                                   "the accounting firm to) to resume."))


async def connection_scope(uow: SqlUnitOfWork, connection_id: str, holder_cif: str) -> set[str]:
    """The CIFs whose entitlements a change of this connection may affect."""
    return {holder_cif, *await repo.rights_of(uow.session, connection_id)}


async def reconcile(uow: SqlUnitOfWork, limit: int = 200) -> int:
    """Publish again what was published before verification and entitlements existed (after an upgrade)."""
    stale = await repo.stale_access_cifs(uow.session, limit)
    await sync_access(uow, stale)
    missing = await repo.cifs_needing_entitlements(uow.session, limit)
    await sync_entitlements(uow, missing)
    return len(stale) + len(missing)
