"""ANAF connections as auth announces them: authorized (verifies the member, discovers rights), token refreshed,
reauthorization required, revoked; each change re-publishes the entitlements it may affect."""
from __future__ import annotations

from spvhub_common.events.auth import (
    ConnectionAuthorized,
    ConnectionRevoked,
    ReauthorizationRequired,
    TokenRefreshed,
)
from spvhub_common.events.envelope import CloudEvent
from spvhub_common.events.portfolio import RightsDiscovered
from spvhub_common.pii import parse_company_id
from spvhub_common.uow import SqlUnitOfWork

from spvhub_portfolio import domain
from spvhub_portfolio.adapters import repository as repo
from spvhub_portfolio.domain import ConnectionStatus
from spvhub_portfolio.handlers.deps import Deps
from spvhub_portfolio.handlers.discovery import discover_recording_errors
from spvhub_portfolio.handlers.entitlements import connection_scope, sync_entitlements
from spvhub_portfolio.handlers.members import verify_member


async def on_connection_authorized(ev: ConnectionAuthorized, _env: CloudEvent, uow: SqlUnitOfWork,
                                   deps: Deps) -> None:
    """Record the connection, verify the member who authorized it when ANAF confirmed the certificate's rights on
    the company, and discover the rights of its certificate holder right away."""
    holder = parse_company_id(ev.company_cif)
    services = domain.services_of(ev.services)
    await repo.upsert_connection(uow.session, {
        "connection_id": ev.connection_id, "holder_cif": holder, "user_id": ev.user_id,
        "holder_name": ev.holder_name, "certificate_serial": ev.certificate_serial, "services": services,
        "status": ConnectionStatus.ACTIVE.value, "status_reason": "", "authorized_at": ev.authorized_at})
    if ev.rights_confirmed:
        await verify_member(uow, deps, holder, ev.user_id, "authorization")
    if "efactura" in services:
        await discover_recording_errors(uow, deps, ev.connection_id, trigger="authorized")
    await sync_entitlements(uow, await connection_scope(uow, ev.connection_id, holder))


async def on_token_refreshed(ev: TokenRefreshed, _env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    conn = await repo.get_connection(uow.session, ev.connection_id, lock=True)
    if conn is not None and conn.status == ConnectionStatus.REAUTHORIZATION_REQUIRED:
        await repo.set_connection(uow.session, ev.connection_id, {"status": ConnectionStatus.ACTIVE.value,
                                                                   "status_reason": ""})
        await sync_entitlements(uow, await connection_scope(uow, ev.connection_id, conn.holder_cif))


async def on_reauthorization_required(ev: ReauthorizationRequired, _env: CloudEvent, uow: SqlUnitOfWork,
                                      deps: Deps) -> None:
    """The connection acts for nobody until someone authorizes again. Its holder's people hear about it from auth;
    a collaborating client is told only if no other connection covers it."""
    conn = await repo.get_connection(uow.session, ev.connection_id, lock=True)
    if conn is not None and conn.status != ConnectionStatus.REVOKED:
        await repo.set_connection(uow.session, ev.connection_id, {
            "status": ConnectionStatus.REAUTHORIZATION_REQUIRED.value, "status_reason": ev.message or ev.reason})
        who = conn.holder_name or conn.holder_cif
        scope = await connection_scope(uow, ev.connection_id, conn.holder_cif)
        await sync_entitlements(uow, scope - {conn.holder_cif}, reason="reauthorization_required",
                                message=f"The ANAF authorization of {who} (CIF {conn.holder_cif}) must be renewed "
                                        "by a person; until then your e-Factura invoices are not downloaded.")
        await sync_entitlements(uow, {conn.holder_cif}, quiet=True)


async def on_connection_revoked(ev: ConnectionRevoked, _env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    """A revoked connection acts for nobody: every right it had is lost. Only the companies whose sync stops (no
    other entitled connection) hear about it, each its own people."""
    conn = await repo.get_connection(uow.session, ev.connection_id, lock=True)
    if conn is None or conn.status == ConnectionStatus.REVOKED:
        return
    await repo.set_connection(uow.session, ev.connection_id, {"status": ConnectionStatus.REVOKED.value,
                                                               "status_reason": ev.reason})
    scope = await connection_scope(uow, ev.connection_id, conn.holder_cif)
    previous = await repo.rights_of(uow.session, ev.connection_id)
    if previous:
        lost = sorted(previous, key=domain.cif_order)
        await repo.replace_rights(uow.session, ev.connection_id, [], lost, [], deps.clock.now())
        uow.publish(RightsDiscovered(connection_id=ev.connection_id, holder_cif=conn.holder_cif, cifs=[],
                                     gained=[], lost=lost, services=conn.services or ["efactura"], mode="revoked",
                                     complete=True))
    who = conn.holder_name or conn.holder_cif
    await sync_entitlements(uow, scope, reason="connection_revoked",
                            message=f"The ANAF authorization of {who} (CIF {conn.holder_cif}) was revoked, and no "
                                    "other authorization covers this company: its e-Factura invoices are no longer "
                                    "downloaded. Authorize ANAF access again to resume.")
