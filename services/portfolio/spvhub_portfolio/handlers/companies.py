"""Companies: ANAF's public registry (cached, refreshed daily), registration by CIF or, for a natural person, by
CNP (a join request when the company already has a verified owner), the company views and the profile flag.

A natural person's company is known by its person key (spvhub_common.pii) everywhere, its CNP kept sealed in
`companies.cnp_sealed`: shown in clear only to the company's verified members, masked to anyone else who may see
the company, never logged."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from spvhub_common.anaf.errors import AnafError
from spvhub_common.errors import AppError, Conflict, NotFound
from spvhub_common.events.portfolio import CompanyRegistered, CompanyUpdated, JoinRequested
from spvhub_common.ids import normalize_cif, parse_tax_id
from spvhub_common.logging import get_logger
from spvhub_common.pii import display_id, is_person_key, parse_company_id
from spvhub_common.uow import SqlUnitOfWork

from spvhub_portfolio import domain
from spvhub_portfolio.adapters import repository as repo
from spvhub_portfolio.adapters.anaf import RegistryRecord
from spvhub_portfolio.domain import Role
from spvhub_portfolio.handlers.access import require_role, sync_access
from spvhub_portfolio.handlers.deps import Deps
from spvhub_portfolio.handlers.entitlements import sync_entitlements

log = get_logger(__name__)


# -- registry ------------------------------------------------------------------------------------------
class RegistryUnavailable(AppError):
    status, code = 503, "registry_unavailable"


async def registry_data(uow: SqlUnitOfWork, deps: Deps, cifs: list[str], *, refresh: bool = False,
                        best_effort: bool = False) -> dict[str, repo.RegistryEntry]:
    """Registry data for `cifs` from the cache, asking ANAF (batches of 100, shared 1/s budget) for entries
    missing or older than `registry_max_age`. `best_effort` returns what the cache has when ANAF fails."""
    now = deps.clock.now()
    cifs = [c for c in cifs if not is_person_key(c)]  # a natural person is not in ANAF's VAT registry
    cached = await repo.registry_rows(uow.session, cifs)
    stale = [c for c in cifs if refresh or c not in cached or cached[c].fetched_at < now - deps.registry_max_age]
    if stale:
        try:
            fetched = await deps.registry.lookup(stale)
        except AnafError as e:
            if not best_effort:
                raise RegistryUnavailable("ANAF's public registry cannot be reached right now; try again in a few "
                                          "minutes.", details={"anaf": e.text}) from e
            log.warning("registry lookup failed", error=e.text, cifs=len(stale))
            fetched = {}
        if fetched:
            await repo.save_registry(uow.session, fetched.values(), now)
            cached.update(await repo.registry_rows(uow.session, list(fetched)))
    return cached


def company_fields(reg: repo.RegistryEntry | None) -> dict[str, Any]:
    """The registry's data as a company's fields (blank when the registry has nothing)."""
    if reg is None:
        return {"name": "", "address": "", "trade_register_no": "", "vat_payer": False, "efactura_registered": False}
    return {"name": reg.name, "address": reg.address, "trade_register_no": reg.trade_register_no,
            "vat_payer": reg.vat_payer, "efactura_registered": reg.efactura_registered}


PERSON_DEFAULT_NAME = "Persoană fizică"


def person_fields(name: str | None) -> dict[str, Any]:
    """A natural person's company fields: what the person typed as its name (registry data does not exist)."""
    return {"name": (name or "").strip() or PERSON_DEFAULT_NAME, "address": "", "trade_register_no": "",
            "vat_payer": False, "efactura_registered": False}


def identity(row: repo.Company, pii: Any = None, *, may_see: bool = False) -> dict[str, Any]:
    """`kind` and `tax_id` of a company as this caller is shown them: the CIF; for a person key the CNP to the
    company's verified members (`may_see`), masked to anyone else, the key itself when the CNP is not known here.
    The key stays the company's id in every link; `tax_id` is for display only."""
    if not is_person_key(row.cif):
        return {"kind": "cif", "tax_id": row.cif}
    cnp = None
    if row.cnp_sealed and pii is not None:
        try:
            cnp = pii.unseal(row.cnp_sealed, row.cif)
        except ValueError:
            log.warning("sealed CNP does not open for its key", cif=row.cif)
    return {"kind": "cnp", "tax_id": display_id(row.cif, cnp, may_see=may_see)}


def company_view(row: repo.Company, pii: Any = None, *, may_see: bool = False, **extra: Any) -> dict[str, Any]:
    return {"cif": row.cif, **identity(row, pii, may_see=may_see), "name": row.name, "address": row.address,
            "trade_register_no": row.trade_register_no,
            "vat_payer": row.vat_payer, "efactura_registered": row.efactura_registered,
            "provides_accounting_services": row.provides_accounting_services,
            "registry_checked_at": row.registry_checked_at, **extra}


def _verification(verified: bool) -> dict[str, Any]:
    if verified:
        return {"verification": "verified"}
    return {"verification": "unverified",
            "verification_hint": "Authorize ANAF access for the company with a certificate that has SPV rights on it "
                                 "(or send your accountant a delegation link), or ask a verified owner or "
                                 "administrator to add you. Until then only the public registry data is shown.",
            "verification_hint_ro": "Autorizați accesul ANAF pentru companie cu un certificat care are drepturi SPV "
                                    "pe ea (sau trimiteți contabilului un link de delegare), ori cereți unui "
                                    "proprietar sau administrator verificat să vă adauge. Până atunci vedeți doar "
                                    "datele publice din registrul ANAF."}


# -- companies --------------------------------------------------------------------------------------------
async def registry_lookup(deps: Deps, raw_cif: str) -> dict[str, Any]:
    """What typing a CIF gives anyone signed in: ANAF's public registry data, shown before the person confirms
    the registration. Registers nothing and grants nothing. Only a CIF: the registry has no natural persons (and a
    CNP never goes in a URL)."""
    async with deps.transaction() as uow:
        parse_company_id(raw_cif)  # a clear CNP here is refused as `cnp_in_url`, not as a bad CIF length
        cif = normalize_cif(raw_cif)
        reg = (await registry_data(uow, deps, [cif])).get(cif)
        if reg is None or not reg.found:
            raise AppError(f"CIF {cif} is valid but ANAF's public registry has no company with it. Check the number.",
                           code="cif_not_in_registry", status=422, details={"cif": cif})
        return {"cif": cif, **company_fields(reg)}


def _typed_company_id(deps: Deps, raw: str) -> tuple[str, str | None]:
    """What a person typed to register: (the company key, the clear CNP or None). A CIF is normalised, a CNP
    (control digit checked) becomes its person key, a person key is taken as it is."""
    text = "".join(str(raw or "").split()).upper()
    if is_person_key(text):
        return text, None
    tax_id = parse_tax_id(raw)
    if tax_id.kind == "cnp":
        return deps.pii.key_of(tax_id.value), tax_id.value
    return tax_id.value, None


async def register_company(deps: Deps, user_id: str, raw_cif: str,
                           name: str | None = None) -> tuple[dict[str, Any], bool]:
    """Register a company by CIF alone, or a natural person by CNP (and the `name` typed, since ANAF's registry
    has no natural persons). Registering proves nothing: the caller becomes an *unverified* member (owner once
    verified, if nobody was verified before) and sees the registry data only. A CIF is never locked by an
    unverified registration; when the company already has a verified owner, the registration is a join request
    its owners and administrators are told about. Returns (company, created)."""
    async with deps.transaction() as uow:
        cif, cnp = _typed_company_id(deps, raw_cif)
        existing = await repo.get_company(uow.session, cif, lock=True)
        if existing is not None:
            m = await repo.direct_membership(uow.session, user_id, cif)
            if m is not None:
                if cnp is not None and existing.cnp_sealed is None:
                    existing = await _learn_cnp(uow, deps, existing, cnp, name)
                return company_view(existing, deps.pii, may_see=m.verified, role=m.role, relation="own",
                                    **_verification(m.verified)), False
        if is_person_key(cif):
            return await _register_person(uow, deps, user_id, cif, cnp, name, existing)
        reg = (await registry_data(uow, deps, [cif])).get(cif)
        if reg is None or not reg.found:
            raise AppError(f"CIF {cif} is valid but ANAF's public registry has no company with it. Check the number.",
                           code="cif_not_in_registry", status=422, details={"cif": cif},
                           messages={"ro": f"CIF {cif} este valid, dar registrul public ANAF nu are nicio companie cu "
                                           "acest cod. Verificați numărul."})
        now = deps.clock.now()
        fields = company_fields(reg)
        if existing is None:
            if not await repo.insert_company(uow.session, {"cif": cif, **fields, "registry_checked_at": now,
                                                           "registered_by": user_id, "created_at": now,
                                                           "updated_at": now}):
                raise Conflict(f"Company CIF {cif} is being registered right now; try again in a moment.",
                               code="registration_in_progress", details={"cif": cif})
            row = await repo.get_company(uow.session, cif)
            assert row is not None
            uow.publish(CompanyRegistered(cif=cif, registered_by=user_id,
                                          provides_accounting_services=row.provides_accounting_services, **fields))
        else:
            await repo.update_company(uow.session, cif, {**fields, "registry_checked_at": now, "updated_at": now})
        return await _join(uow, deps, user_id, cif), True


async def _join(uow: SqlUnitOfWork, deps: Deps, user_id: str, cif: str) -> dict[str, Any]:
    """The caller becomes an unverified member: owner, or a join request when a verified owner exists."""
    role = Role.OWNER.value
    if await repo.has_verified_owner(uow.session, cif):
        role = Role.MEMBER.value  # asks to join; the owners decide the role when they approve
        managers = await repo.verified_people(uow.session, cif, domain.MANAGERS)
        uow.publish(JoinRequested(cif=cif, user_id=user_id, via="registration", notify_user_ids=managers))
    await repo.upsert_member(uow.session, cif, user_id, role)
    row = await repo.get_company(uow.session, cif)
    assert row is not None
    await sync_access(uow, {cif})
    return company_view(row, deps.pii, may_see=False, role=role, relation="own", **_verification(False))


async def _register_person(uow: SqlUnitOfWork, deps: Deps, user_id: str, key: str, cnp: str | None,
                           name: str | None, existing: repo.Company | None) -> tuple[dict[str, Any], bool]:
    """A natural person's company: no registry lookup (ANAF's VAT registry does not list people by CNP); the CNP
    is stored and published sealed to the key, never in clear."""
    if cnp is None and (existing is None or existing.cnp_sealed is None):
        raise AppError("Register a natural person with their CNP (13 digits); the key alone does not say who it is.",
                       code="cnp_required", status=422,
                       messages={"ro": "Înregistrați persoana fizică cu CNP-ul ei (13 cifre); cheia singură nu "
                                       "spune cine este."})
    now = deps.clock.now()
    if existing is None:
        assert cnp is not None
        sealed = deps.pii.seal(cnp)
        fields = person_fields(name)
        if not await repo.insert_company(uow.session, {"cif": key, **fields, "cnp_sealed": sealed,
                                                       "registry_checked_at": None, "registered_by": user_id,
                                                       "created_at": now, "updated_at": now}):
            raise Conflict("This natural person is being registered right now; try again in a moment.",
                           code="registration_in_progress", details={"cif": key})
        uow.publish(CompanyRegistered(cif=key, registered_by=user_id, cnp_sealed=sealed, **fields))
    elif existing.cnp_sealed is None and cnp is not None:
        await _learn_cnp(uow, deps, existing, cnp, name)
    elif cnp is not None and name and name.strip() and existing.name in ("", PERSON_DEFAULT_NAME):
        # met first in a firm's SPV inventory (the placeholder name): the person's own name replaces it
        await repo.update_company(uow.session, key, {"name": name.strip(), "updated_at": now})
        _publish_updated(uow, replace(existing, name=name.strip(), updated_at=now))
    return await _join(uow, deps, user_id, key), True


async def _learn_cnp(uow: SqlUnitOfWork, deps: Deps, existing: repo.Company, cnp: str,
                     name: str | None) -> repo.Company:
    """A person key known so far without its CNP (met in an SPV inventory, or an invitation's client): the CNP is
    stored sealed and the entitlements published again with it, so the services calling ANAF can name the person."""
    values: dict[str, Any] = {"cnp_sealed": deps.pii.seal(cnp), "updated_at": deps.clock.now()}
    if name and name.strip() and existing.name in ("", PERSON_DEFAULT_NAME):
        values["name"] = name.strip()
    await repo.update_company(uow.session, existing.cif, values)
    await sync_entitlements(uow, {existing.cif}, force={existing.cif})
    row = await repo.get_company(uow.session, existing.cif)
    assert row is not None
    return row


async def ensure_company(uow: SqlUnitOfWork, deps: Deps, cif: str, user_id: str | None) -> repo.Company:
    """The company row, created from the registry when new (publishes company-registered)."""
    row = await repo.get_company(uow.session, cif, lock=True)
    if row is not None:
        return row
    reg = (await registry_data(uow, deps, [cif], best_effort=True)).get(cif)
    fields = person_fields(None) if is_person_key(cif) else company_fields(reg if reg and reg.found else None)
    now = deps.clock.now()
    await repo.insert_company(uow.session, {"cif": cif, **fields, "registered_by": user_id, "created_at": now,
                                            "updated_at": now, "registry_checked_at": now if reg else None})
    row = await repo.get_company(uow.session, cif, lock=True)
    assert row is not None
    uow.publish(CompanyRegistered(cif=cif, registered_by=user_id, **fields))
    return row


async def get_company(deps: Deps, user_id: str, raw_cif: str) -> dict[str, Any]:
    async with deps.uow() as uow:
        cif = parse_company_id(raw_cif)
        grant = await require_role(uow, user_id, cif, allow_unverified=True)
        row = await repo.get_company(uow.session, cif)
        if row is None:
            raise NotFound(f"Company CIF {cif} is not registered.", code="company_not_found")
        extra: dict[str, Any] = {"role": grant.role, "relation": "client" if grant.via_firm_cif else "own",
                                 "can_file": grant.can_file, **_verification(grant.verified)}
        if grant.via_firm_cif:
            extra["via_firm_cif"] = grant.via_firm_cif
        may_see = grant.verified and not grant.via_firm_cif
        return company_view(row, deps.pii, may_see=may_see, **extra)


async def list_companies(deps: Deps, user_id: str) -> list[dict[str, Any]]:
    """The caller's own companies (verified or not), then the clients of the firms the caller is a verified member
    of, each marked."""
    async with deps.uow() as uow:
        own = await repo.user_memberships(uow.session, user_id)
        own_roles = {m.cif: m.role for m in own}
        own_verified = {m.cif: m.verified_at is not None for m in own}
        firms = [c for c, v in own_verified.items() if v]
        collabs = await repo.open_collaborations_of_firms(uow.session, firms)
        rows = await repo.company_rows(uow.session, set(own_roles) | {c.client_cif for c in collabs})

        def name(cif: str) -> str:
            return rows[cif].name if cif in rows else ""

        out: list[dict[str, Any]] = []
        for cif in sorted(own_roles, key=lambda c: (name(c), c)):
            if cif in rows:
                out.append(company_view(rows[cif], deps.pii, may_see=own_verified[cif], relation="own",
                                        role=own_roles[cif],
                                        can_file=own_verified[cif] and own_roles[cif] in domain.MANAGERS,
                                        **_verification(own_verified[cif])))
        for c in sorted(collabs, key=lambda c: (name(c.client_cif), c.client_cif)):
            if c.client_cif in own_roles or c.client_cif not in rows:
                continue
            active = c.status == "active"
            out.append(company_view(rows[c.client_cif], deps.pii, may_see=False, relation="client",
                                    role=Role.ACCOUNTANT.value if active else None,
                                    via_firm_cif=c.firm_cif, collaboration_status=c.status,
                                    collaboration_id=c.id, accessible=active, can_file=active and c.may_file,
                                    verification="verified" if active else "not_applicable"))
        return out


async def update_company_profile(deps: Deps, user_id: str, raw_cif: str,
                                 provides_accounting_services: bool | None) -> dict[str, Any]:
    async with deps.transaction() as uow:
        cif = parse_company_id(raw_cif)
        role = (await require_role(uow, user_id, cif, domain.MANAGERS, direct_only=True)).role
        row = await repo.get_company(uow.session, cif, lock=True)
        if row is None:
            raise NotFound(f"Company CIF {cif} is not registered.", code="company_not_found")
        flag = provides_accounting_services
        if flag is not None and flag != row.provides_accounting_services:
            await repo.update_company(uow.session, cif, {"provides_accounting_services": flag,
                                                         "updated_at": deps.clock.now()})
            row = await repo.get_company(uow.session, cif)
            assert row is not None
            _publish_updated(uow, row)
        return company_view(row, deps.pii, may_see=True, role=role, relation="own")


def _publish_updated(uow: SqlUnitOfWork, row: repo.Company) -> None:
    uow.publish(CompanyUpdated(cif=row.cif, name=row.name, address=row.address,
                               trade_register_no=row.trade_register_no, vat_payer=row.vat_payer,
                               efactura_registered=row.efactura_registered,
                               provides_accounting_services=row.provides_accounting_services))


async def refresh_registry(uow: SqlUnitOfWork, deps: Deps, limit: int = 500) -> int:
    """Refresh registry data of companies older than `registry_max_age`; publish company-updated on changes.
    Returns how many companies were refreshed (0 when none is due or ANAF failed)."""
    now = deps.clock.now()
    due = await repo.companies_due_for_registry(uow.session, now - deps.registry_max_age, limit)
    if not due:
        return 0
    try:
        fetched: dict[str, RegistryRecord] = await deps.registry.lookup([r.cif for r in due])
    except AnafError as e:
        log.warning("registry refresh failed", error=e.text)
        return 0
    await repo.save_registry(uow.session, fetched.values(), now)
    for r in due:
        rec = fetched.get(r.cif)
        values: dict[str, Any] = {"registry_checked_at": now}
        if rec is not None and rec.found:
            new = {"name": rec.name, "address": rec.address, "trade_register_no": rec.trade_register_no,
                   "vat_payer": rec.vat_payer, "efactura_registered": rec.efactura_registered}
            if any(getattr(r, k) != v for k, v in new.items()):
                values.update(new, updated_at=now)
        await repo.update_company(uow.session, r.cif, values)
        if len(values) > 1:
            _publish_updated(uow, replace(r, **values))
    return len(due)
