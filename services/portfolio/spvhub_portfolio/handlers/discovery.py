"""Discovery of the CIFs a connection's certificate holder has SPV rights on (ANAF's inventory, else probes of
the candidates), on demand, on authorization and on the periodic re-check; and the firm's candidate list."""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from spvhub_common.anaf.errors import AnafError, BudgetExhausted, LimitReached, Unauthorized
from spvhub_common.errors import AppError, Conflict, NotFound
from spvhub_common.events.portfolio import CompanyRegistered, RightsDiscovered
from spvhub_common.ids import InvalidTaxId, mask_cnp, parse_tax_id
from spvhub_common.logging import get_logger
from spvhub_common.pii import is_person_key, parse_company_id
from spvhub_common.uow import SqlUnitOfWork

from spvhub_portfolio import domain
from spvhub_portfolio.adapters import repository as repo
from spvhub_portfolio.adapters.anaf import (
    ConnectionToken,
    ConnectionUnavailable,
    EfacturaListPort,
    ListProbe,
    TokenPort,
    list_with_refresh,
)
from spvhub_portfolio.domain import ConnectionStatus
from spvhub_portfolio.handlers.access import require_role
from spvhub_portfolio.handlers.companies import PERSON_DEFAULT_NAME, person_fields, registry_data
from spvhub_portfolio.handlers.deps import Deps
from spvhub_portfolio.handlers.entitlements import sync_entitlements
from spvhub_portfolio.handlers.members import verify_member

log = get_logger(__name__)
_THIRTEEN_DIGITS = re.compile(r"(?<!\d)\d{13}(?!\d)")


def scrub(text: str) -> str:
    """ANAF's text with any CNP masked: it may echo the `cif=` asked (a natural person's CNP), and what is logged or
    stored as an error never carries one."""
    return _THIRTEEN_DIGITS.sub(lambda m: mask_cnp(m.group(0)), text)


def cnps_in(deps: Deps, cui_field: object) -> dict[str, str]:
    """The natural persons an inventory (`cui` of listaMesaje) names by CNP: person key -> clear CNP. Only for
    sealing at once; never logged, never kept in clear."""
    out: dict[str, str] = {}
    for part in str(cui_field or "").split(","):
        text = "".join(part.split())
        if len(text) != 13 or not text.isdigit():
            continue
        try:
            tax_id = parse_tax_id(text)
        except InvalidTaxId:
            continue
        if tax_id.kind == "cnp":
            out[deps.pii.key_of(tax_id.value)] = tax_id.value
    return out


class HolderIdUnknown(AppError):
    status, code = 409, "cnp_unknown"


async def anaf_id_of(uow: SqlUnitOfWork, deps: Deps, cif: str) -> str:
    """What ANAF knows the company by: the CIF itself, or a person key's CNP unsealed (only for the call)."""
    if not is_person_key(cif):
        return cif
    sealed = (await repo.sealed_cnps(uow.session, [cif])).get(cif)
    if sealed is None:
        raise HolderIdUnknown(f"The natural person {cif} was never registered with their CNP, so ANAF cannot be "
                              "asked about them.", details={"cif": cif},
                              messages={"ro": f"Persoana fizică {cif} nu a fost înregistrată cu CNP-ul ei, deci ANAF "
                                              "nu poate fi întrebat despre ea."})
    try:
        return deps.pii.unseal(sealed, cif)
    except ValueError as e:
        raise HolderIdUnknown(f"The stored CNP of {cif} does not open with this installation's secret.",
                              details={"cif": cif}) from e


@dataclass
class DiscoveryResult:
    connection_id: str
    holder_cif: str
    mode: str
    complete: bool
    cifs: list[str]
    gained: list[str]
    lost: list[str]
    unknown: list[str] = field(default_factory=list)
    probed: int = 0

    def view(self) -> dict[str, Any]:
        return {"connection_id": self.connection_id, "holder_cif": self.holder_cif, "mode": self.mode,
                "complete": self.complete, "count": len(self.cifs), "cifs": self.cifs, "gained": self.gained,
                "lost": self.lost, "not_checked": self.unknown, "probed": self.probed}


class _SharedToken:
    """One token for concurrent probes; a 401/403 refreshes it once for all of them."""

    def __init__(self, token: ConnectionToken, tokens: TokenPort) -> None:
        self.token = token
        self.tokens = tokens
        self.lock = asyncio.Lock()

    async def list(self, efactura: EfacturaListPort, cif: str, days: int) -> ListProbe:
        used = self.token
        try:
            return await efactura.list_messages(used.access_token, cif, days)
        except Unauthorized:
            async with self.lock:
                if self.token is used:
                    self.token = await self.tokens.refresh(used.connection_id)
            return await efactura.list_messages(self.token.access_token, cif, days)


def discovery_due(conn: repo.Connection, now: datetime, deps: Deps) -> bool:
    last = conn.last_discovery_at
    if "efactura" not in (conn.services or []) or conn.status != ConnectionStatus.ACTIVE:
        return False
    if last is None:
        return True
    if conn.last_discovery_complete is False:
        return now - last >= deps.retry_incomplete_after
    return now - last >= deps.recheck_interval


async def discover(uow: SqlUnitOfWork, deps: Deps, connection_id: str, *, trigger: str) -> DiscoveryResult:
    """Find every CIF the connection's certificate holder has SPV rights on, record it, publish the diff.

    1. List the holder's own e-Factura messages: when the answer's `cui` carries the comma-joined inventory,
       those are the CIFs. 2. Otherwise probe candidates (companies on the platform, the firm's uploaded CSV,
       rights known before) with `listaMesajeFactura?zile=1&cif=X`: a rights error means no rights.
    Probes that cannot run (budget spent, ANAF down) keep their previous state, so nothing is lost by mistake.
    """
    conn = await repo.get_connection(uow.session, connection_id, lock=True)
    if conn is None:
        raise NotFound(f"Unknown connection {connection_id}.", code="no_connection")
    if conn.status != ConnectionStatus.ACTIVE:
        raise Conflict(f"The e-Factura authorization of CIF {conn.holder_cif} is {conn.status}: authorize "
                       "again before discovering the portfolio.", code="no_active_efactura_authorization",
                       details={"connection_id": connection_id, "status": conn.status})
    holder = conn.holder_cif
    try:
        token = await deps.tokens.access_token(connection_id)
    except ConnectionUnavailable as e:
        if e.code == "reauthorization_required":
            await repo.set_connection(uow.session, connection_id, {
                "status": ConnectionStatus.REAUTHORIZATION_REQUIRED.value, "status_reason": e.message})
        raise
    shared = _SharedToken(token, deps.tokens)
    first, shared.token = await list_with_refresh(deps.efactura, deps.tokens, token,
                                                  await anaf_id_of(uow, deps, holder), deps.discovery_days)
    found: set[str] = set()
    unknown: set[str] = set()
    inventory = domain.inventory_from_cui_field(holder, first.cui_field, deps.pii.key_of_anaf_id)
    probed = 1
    persons: dict[str, str] = {}  # person key -> CNP, as the inventory named them
    if inventory is not None:
        mode = "inventory"
        found = set(inventory)
        persons = cnps_in(deps, first.cui_field)
    else:
        mode = "probe"
        if first.has_rights:
            found.add(holder)
        previous = await repo.rights_of(uow.session, connection_id)
        pool = (set(await repo.all_company_cifs(uow.session)) | set(await repo.candidates_of(uow.session, holder))
                | previous) - {holder}
        # natural persons are not probed (their CNP would be unsealed for each probe); the inventory finds them
        pool = {c for c in pool if not is_person_key(c)}
        seen_inventory: list[tuple[list[str], object]] = []

        async def probe(cif: str) -> None:
            try:
                res = await shared.list(deps.efactura, cif, 1)
            except (BudgetExhausted, LimitReached) as e:
                log.warning("probe skipped: limit", cif=cif, error=e.text)
                unknown.add(cif)
                return
            except Unauthorized:
                raise
            except AnafError as e:
                if not e.transient:
                    log.warning("probe failed", cif=cif, error=e.text)
                unknown.add(cif)
                return
            if res.has_rights:
                found.add(cif)
                inv = domain.inventory_from_cui_field(cif, res.cui_field, deps.pii.key_of_anaf_id)
                if inv is not None:
                    seen_inventory.append((inv, res.cui_field))

        # In waves: as soon as one answer carries the inventory (a candidate whose inbox is not empty),
        # it settles the whole portfolio and the remaining probes are not spent.
        ordered = sorted(pool, key=domain.cif_order)
        step = max(1, deps.probe_concurrency)
        for i in range(0, len(ordered), step):
            wave = ordered[i:i + step]
            await asyncio.gather(*(probe(c) for c in wave))
            probed += len(wave)
            if seen_inventory:
                mode, found, unknown = "inventory", set(seen_inventory[0][0]), set()
                persons = cnps_in(deps, seen_inventory[0][1])
                break
    return await _record_discovery(uow, deps, conn, mode, found, unknown, probed, trigger,
                                   {k: v for k, v in persons.items() if k in found})


async def keep_person_ids(uow: SqlUnitOfWork, deps: Deps, persons: dict[str, str]) -> dict[str, str]:
    """The CNPs an inventory named, kept sealed under their person keys so the platform can name those people to
    ANAF once they join (auth from company-registered, efactura from entitlements-changed): a person key not known
    yet becomes a company (placeholder name, no member) announced with its sealed CNP; one known without its CNP
    gets it and its entitlements are published again. Returns the names of these companies (for the event)."""
    if not persons:
        return {}
    rows = await repo.company_rows(uow.session, persons)
    now = deps.clock.now()
    names: dict[str, str] = {}
    learnt: set[str] = set()
    for key, cnp in sorted(persons.items()):
        row = rows.get(key)
        if row is None:
            sealed, fields = deps.pii.seal(cnp), person_fields(None)
            if await repo.insert_company(uow.session, {"cif": key, **fields, "cnp_sealed": sealed,
                                                       "registry_checked_at": None, "registered_by": None,
                                                       "created_at": now, "updated_at": now}):
                uow.publish(CompanyRegistered(cif=key, registered_by=None, cnp_sealed=sealed, **fields))
            names[key] = fields["name"]
            continue
        names[key] = row.name or PERSON_DEFAULT_NAME
        if row.cnp_sealed is None:
            await repo.update_company(uow.session, key, {"cnp_sealed": deps.pii.seal(cnp), "updated_at": now})
            learnt.add(key)
    if learnt:
        await sync_entitlements(uow, learnt, force=learnt)
    return names


async def _record_discovery(uow: SqlUnitOfWork, deps: Deps, conn: repo.Connection, mode: str, found: set[str],
                            unknown: set[str], probed: int, trigger: str,
                            persons: dict[str, str] | None = None) -> DiscoveryResult:
    connection_id, holder = conn.connection_id, conn.holder_cif
    now = deps.clock.now()
    previous = await repo.rights_of(uow.session, connection_id)
    d = domain.diff_rights(previous, found, unknown)
    await repo.replace_rights(uow.session, connection_id, d.gained, d.lost, sorted(found & previous), now)
    reg = await registry_data(uow, deps, d.cifs, best_effort=True)  # enrich; the daily refresh retries failures
    names = {c: r.name for c, r in reg.items() if r.found and r.name and c in d.cifs}
    names |= await keep_person_ids(uow, deps, persons or {})
    complete = not unknown
    await repo.set_connection(uow.session, connection_id, {
        "last_discovery_at": now, "last_discovery_mode": mode, "last_discovery_complete": complete,
        "last_discovery_error": None if complete else f"{len(unknown)} candidate(s) could not be checked",
        "last_discovery_count": len(d.cifs)})
    services = conn.services or ["efactura"]
    if trigger != "recheck" or d.gained or d.lost:
        uow.publish(RightsDiscovered(connection_id=connection_id, holder_cif=holder, cifs=d.cifs, gained=d.gained,
                                     lost=d.lost, services=services, mode=mode, complete=complete, names=names))
    if holder in d.cifs and conn.user_id:
        # ANAF's own answer names the holder: the member who authorized has proven control.
        await verify_member(uow, deps, holder, conn.user_id, "authorization")
    if d.gained or d.lost:
        who = conn.holder_name or f"the certificate holder of CIF {holder}"
        await sync_entitlements(uow, set(d.gained) | set(d.lost), reason="spv_rights_removed",
                                message=f"The certificate of {who} no longer has SPV rights on this company (ANAF: "
                                        "\"Nu aveti drept in SPV\"), and no other authorization covers it: its "
                                        "e-Factura invoices are no longer downloaded. The company must grant the "
                                        "rights again in SPV (a new enrolment takes about a day), or authorize with a "
                                        "certificate that has them.")
    log.info("rights discovered", connection_id=connection_id, holder=holder, mode=mode, count=len(d.cifs),
             gained=len(d.gained), lost=len(d.lost), unknown=len(unknown), trigger=trigger)
    return DiscoveryResult(connection_id, holder, mode, complete, d.cifs, d.gained, d.lost,
                           sorted(unknown, key=domain.cif_order), probed)


async def discover_recording_errors(uow: SqlUnitOfWork, deps: Deps, connection_id: str, *,
                                    trigger: str) -> DiscoveryResult | None:
    """Discovery from an event or a job: a failure is recorded on the connection (and retried by the re-check
    job) instead of failing the message."""
    try:
        return await discover(uow, deps, connection_id, trigger=trigger)
    except (ConnectionUnavailable, AnafError, ConnectionError, AppError) as e:
        text = scrub(getattr(e, "text", None) or getattr(e, "message", None) or str(e))
        log.warning("discovery failed", connection_id=connection_id, error=text[:300], trigger=trigger)
        await repo.set_connection(uow.session, connection_id, {
            "last_discovery_at": deps.clock.now(), "last_discovery_complete": False,
            "last_discovery_error": f"{type(e).__name__}: {text}"[:1000]})
        return None


async def discover_on_demand(deps: Deps, user_id: str, raw_cif: str) -> dict[str, Any]:
    async with deps.transaction() as uow:
        cif = parse_company_id(raw_cif)
        await require_role(uow, user_id, cif, domain.MANAGERS, direct_only=True)
        conns = [c for c in await repo.connections_of_holder(uow.session, cif)
                 if c.status == ConnectionStatus.ACTIVE and "efactura" in (c.services or [])]
        if not conns:
            raise Conflict(f"CIF {cif} has no active e-Factura authorization: authorize e-Factura with the firm's "
                           "certificate first.", code="no_active_efactura_authorization", details={"cif": cif})
        results = []
        for c in conns:
            try:
                results.append((await discover(uow, deps, c.connection_id, trigger="on_demand")).view())
            except ConnectionUnavailable as e:
                await uow.commit()  # keep the status change (reauthorization required)
                raise Conflict(f"The e-Factura authorization of CIF {cif} must be renewed by the certificate holder.",
                               code=e.code, details={"connection_id": c.connection_id}) from e
            except (BudgetExhausted, LimitReached) as e:
                raise AppError("ANAF's call limits are reached for now; discovery will run again automatically.",
                               code="anaf_limit_reached", status=429, details={"anaf": scrub(e.text)}) from e
            except AnafError as e:
                raise AppError("ANAF could not be queried; try again later.", code="anaf_unavailable", status=503,
                               details={"anaf": scrub(e.text)}) from e
        cifs = sorted({x for r in results for x in r["cifs"]}, key=domain.cif_order)
        return {"cif": cif, "count": len(cifs), "cifs": cifs, "connections": results}


# -- candidates --------------------------------------------------------------------------------------------
MAX_CANDIDATES = 20_000


async def upload_candidates(deps: Deps, user_id: str, raw_cif: str, text: str) -> dict[str, Any]:
    async with deps.transaction() as uow:
        cif = parse_company_id(raw_cif)
        await require_role(uow, user_id, cif, domain.MANAGERS, direct_only=True)
        parsed = await asyncio.to_thread(domain.parse_candidates_csv, text)  # tens of ms for 20,000 rows: off the loop
        if parsed.errors:
            raise AppError(f"{len(parsed.errors)} row(s) of the CSV do not hold a valid CIF; nothing was saved.",
                           code="invalid_candidates", status=422, details={"rows": parsed.errors[:200]})
        if not parsed.cifs:
            raise AppError("The CSV holds no CIF.", code="empty_candidates", status=422)
        if len(parsed.cifs) > MAX_CANDIDATES:
            raise AppError(f"At most {MAX_CANDIDATES} CIFs per firm.", code="too_many_candidates", status=422)
        added = await repo.add_candidates(uow.session, cif, [c for c in parsed.cifs if c != cif], user_id)
        total = len(await repo.candidates_of(uow.session, cif))
        return {"cif": cif, "received": len(parsed.cifs), "added": added, "total": total}


async def list_candidates(deps: Deps, user_id: str, raw_cif: str) -> dict[str, Any]:
    async with deps.uow() as uow:
        cif = parse_company_id(raw_cif)
        await require_role(uow, user_id, cif, direct_only=True)
        return {"cif": cif, "candidates": await repo.candidates_of(uow.session, cif)}
