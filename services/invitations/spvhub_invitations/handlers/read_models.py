"""Consumed events that keep the read models: portfolio's companies and discovered rights, auth's revoked
connections. They run inside the consumer's transaction and never commit.

CIFs written by portfolio and ANAF are read (RO and spaces dropped), never refused: a consumer that raised on an
odd id would stop its partition."""
from __future__ import annotations

from spvhub_common.events import CloudEvent
from spvhub_common.events.auth import ConnectionRevoked
from spvhub_common.events.portfolio import CompanyRegistered, CompanyUpdated, RightsDiscovered
from spvhub_common.ids import mask_cnp, strip_ro
from spvhub_common.logging import get_logger
from spvhub_common.pii import is_person_key
from spvhub_common.uow import SqlUnitOfWork

from spvhub_invitations.adapters import repository as repo
from spvhub_invitations.handlers.deps import Deps

log = get_logger(__name__)


def masked_cnp(deps: Deps, cif: str, sealed: str | None) -> str | None:
    """A natural person's CNP as this service shows it (masked), from portfolio's sealed value; None when there is
    none or it does not open for the key (never logged)."""
    if not sealed or not is_person_key(cif):
        return None
    try:
        return mask_cnp(deps.pii.unseal(sealed, cif))
    except ValueError:
        log.warning("company-registered carries a sealed CNP that does not open for its key", cif=cif)
        return None


async def on_company(ev: CompanyRegistered | CompanyUpdated, _env: CloudEvent, uow: SqlUnitOfWork,
                     deps: Deps) -> None:
    cif = strip_ro(ev.cif)
    values = {"cif": cif, "name": ev.name, "address": ev.address, "trade_register_no": ev.trade_register_no,
              "vat_payer": ev.vat_payer, "provides_accounting_services": ev.provides_accounting_services}
    masked = masked_cnp(deps, cif, getattr(ev, "cnp_sealed", None))
    if masked is not None:
        values["cnp_masked"] = masked
    await repo.upsert_company(uow.session, values)


async def on_rights_discovered(ev: RightsDiscovered, _env: CloudEvent, uow: SqlUnitOfWork, _deps: Deps) -> None:
    holder = strip_ro(ev.holder_cif)
    await repo.replace_discovered(uow.session, ev.connection_id, holder, list(ev.services),
                                  [strip_ro(c) for c in ev.cifs])
    await repo.remember_names(uow.session, {strip_ro(c): n.strip() for c, n in sorted(ev.names.items())})


async def on_connection_revoked(ev: ConnectionRevoked, _env: CloudEvent, uow: SqlUnitOfWork,
                                _deps: Deps) -> None:
    await repo.deactivate_connection(uow.session, ev.connection_id)
