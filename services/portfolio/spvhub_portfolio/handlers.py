"""Use cases of the portfolio service: companies and memberships, the registry cache, discovery of SPV rights,
collaborations, access scoping (portfolio.access-changed) and the portfolio troubleshooting view.

Every command runs in one unit of work (one transaction); the routing table at the bottom maps consumed
events to handlers.
"""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from spvhub_common.access import insufficient_role, no_access, not_verified
from spvhub_common.anaf.errors import AnafError, BudgetExhausted, LimitReached, Unauthorized
from spvhub_common.clock import Clock
from spvhub_common.errors import AppError, Conflict, Forbidden, NotFound
from spvhub_common.events import Event
from spvhub_common.events.auth import (
    ConnectionAuthorized,
    ConnectionRevoked,
    EmailVerified,
    ReauthorizationRequired,
    TokenRefreshed,
    UserRegistered,
)
from spvhub_common.events.envelope import CloudEvent
from spvhub_common.events.invitations import (
    InvitationAccepted,
    InvitationClaimed,
    InvitationDeclined,
    InvitationExpired,
    InvitationRevoked,
    InvitationSent,
)
from spvhub_common.events.portfolio import (
    AccessChanged,
    AccessLost,
    CollaborationEnded,
    CollaborationPermissionsChanged,
    CollaborationStarted,
    CompanyRegistered,
    CompanyUpdated,
    EntitledConnection,
    EntitlementsChanged,
    JoinRequested,
    MembershipVerified,
    RightsDiscovered,
)
from spvhub_common.logging import get_logger
from spvhub_common.uow import SqlUnitOfWork

from spvhub_portfolio import domain
from spvhub_portfolio.adapters import repository as repo
from spvhub_portfolio.adapters.anaf import (
    ConnectionToken,
    ConnectionUnavailable,
    EfacturaListPort,
    RegistryPort,
    RegistryRecord,
    TokenPort,
    list_with_refresh,
)
from spvhub_portfolio.domain import CollaborationStatus, ConnectionStatus, Role

log = get_logger(__name__)


@dataclass
class Deps:
    """The ports the use cases need (built in bootstrap; fakes in unit tests)."""

    registry: RegistryPort
    efactura: EfacturaListPort
    tokens: TokenPort
    clock: Clock
    registry_max_age: timedelta = timedelta(days=1)
    recheck_interval: timedelta = timedelta(days=1)
    retry_incomplete_after: timedelta = timedelta(minutes=30)
    probe_concurrency: int = 8
    discovery_days: int = 60


# -- access ---------------------------------------------------------------------------------------------
async def role_on(uow: SqlUnitOfWork, user_id: str, cif: str) -> domain.Grant | None:
    direct = await repo.direct_membership(uow.session, user_id, cif)
    firms = [] if direct else await repo.firms_of_user_with_active_collaboration(uow.session, user_id, cif)
    return domain.effective_grant(direct, firms)


async def require_role(uow: SqlUnitOfWork, user_id: str, cif: str, allowed: tuple[str, ...] | None = None,
                       *, direct_only: bool = False, allow_unverified: bool = False) -> domain.Grant:
    """The caller's grant on `cif` (direct membership, or accountant through an active collaboration), or 403.

    `allowed` restricts the roles; `direct_only` refuses firm users reaching a client (company administration);
    only a verified membership passes unless `allow_unverified`.
    """
    grant = await role_on(uow, user_id, cif)
    if grant is None or (direct_only and grant.via_firm_cif):
        raise no_access(cif)
    if not grant.verified and not allow_unverified:
        raise not_verified(cif)
    if allowed is not None and grant.role not in allowed:
        raise insufficient_role(cif, grant.role, tuple(allowed))
    return grant


async def sync_access(uow: SqlUnitOfWork, cifs: set[str] | list[str]) -> None:
    """Publish `portfolio.access-changed` for every (user, CIF) whose effective access differs from what
    portfolio last published: grants, role changes, verification and revokes, all explicit and idempotent."""
    for cif in sorted(set(cifs)):
        direct, via = await repo.desired_access(uow.session, cif)
        current = await repo.published_access(uow.session, cif)
        for user_id in sorted(set(direct) | set(via) | set(current)):
            want = domain.effective_grant(direct.get(user_id), via.get(user_id, []))
            have = current.get(user_id)
            if want is None and have is not None:
                await repo.delete_published(uow.session, user_id, cif)
                uow.publish(AccessChanged(cif=cif, user_id=user_id, role=have["role"], granted=False,
                                          via_firm_cif=have["via_firm_cif"], verified=bool(have["verified"])))
            elif want is not None and (have is None or (have["role"], have["via_firm_cif"], have["verified"],
                                                        have["can_file"]) !=
                                       (want.role, want.via_firm_cif, want.verified, want.can_file)):
                await repo.set_published(uow.session, user_id, cif, want.role, want.via_firm_cif, want.verified,
                                         want.can_file)
                uow.publish(AccessChanged(cif=cif, user_id=user_id, role=want.role, granted=True,
                                          via_firm_cif=want.via_firm_cif, verified=want.verified,
                                          can_file=want.can_file))


async def sync_access_of_firm(uow: SqlUnitOfWork, cif: str) -> None:
    """After a membership change: the company itself and every client it reaches as a firm."""
    await sync_access(uow, {cif, *await repo.active_client_cifs(uow.session, cif)})


async def verify_member(uow: SqlUnitOfWork, deps: Deps, cif: str, user_id: str, via: str) -> bool:
    """Verify an existing membership (proof of control). The first verified member of a company is its owner; a
    later one keeps the role asked for, never above administrator. Returns whether anything changed."""
    m = await repo.direct_membership(uow.session, user_id, cif)
    if m is None or m.verified:
        return False
    if await repo.email_unverified(uow.session, user_id):
        # a verified e-mail comes first: the proof is kept and applied on `auth.email-verified`
        await repo.record_pending_verification(uow.session, user_id, cif, via, deps.clock.now())
        log.info("membership verification waits for the e-mail's", cif=cif, user_id=user_id, via=via)
        return False
    has_owner = await repo.has_verified_owner(uow.session, cif)
    # a grant names its role; any other proof makes the first verified member the owner, later ones at most admin
    role = m.role if via == "grant" else Role.OWNER.value if not has_owner else (
        Role.ADMIN.value if m.role == Role.OWNER else m.role)
    await repo.upsert_member(uow.session, cif, user_id, role, verified_via=via, at=deps.clock.now())
    uow.publish(MembershipVerified(cif=cif, user_id=user_id, role=role, via=via))
    await sync_access_of_firm(uow, cif)
    log.info("membership verified", cif=cif, user_id=user_id, via=via, role=role)
    return True


# -- entitlements ----------------------------------------------------------------------------------------
async def sync_entitlements(uow: SqlUnitOfWork, cifs: set[str] | list[str], *, reason: str = "",
                            message: str = "", quiet: bool = False) -> None:
    """Publish `portfolio.entitlements-changed` for every CIF whose entitled connections changed. When the last one
    goes, the company's sync stops: its own verified people (and, for a client, the managers of the firm whose
    connection it was) are told once, with the reason — unless `quiet` (another notice already tells them)."""
    for cif in sorted(set(cifs)):
        facts = await repo.connection_facts_for(uow.session, cif)
        firms = await repo.active_firms_of_client(uow.session, cif)
        now = [{"connection_id": e.connection_id, "holder_cif": e.holder_cif, "services": list(e.services),
                "may_file": e.may_file} for e in domain.entitled_connections(cif, facts, firms)]
        before = await repo.published_entitlements(uow.session, cif)
        if before == now:
            continue
        await repo.set_published_entitlements(uow.session, cif, now)
        if before is None and not now:
            continue  # nobody was ever told anything about this CIF: nothing to say now either
        uow.publish(EntitlementsChanged(cif=cif, connections=[EntitledConnection(**c) for c in now]))
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


# -- registry ------------------------------------------------------------------------------------------
class RegistryUnavailable(AppError):
    status, code = 503, "registry_unavailable"


async def registry_data(uow: SqlUnitOfWork, deps: Deps, cifs: list[str], *, refresh: bool = False,
                        best_effort: bool = False) -> dict[str, dict[str, Any]]:
    """Registry data for `cifs` from the cache, asking ANAF (batches of 100, shared 1/s budget) for entries
    missing or older than `registry_max_age`. `best_effort` returns what the cache has when ANAF fails."""
    now = deps.clock.now()
    cached = await repo.registry_rows(uow.session, cifs)
    stale = [c for c in cifs if refresh or c not in cached or cached[c]["fetched_at"] < now - deps.registry_max_age]
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


def _company_fields(reg: dict[str, Any] | None) -> dict[str, Any]:
    reg = reg or {}
    return {k: reg.get(k, d) for k, d in (("name", ""), ("address", ""), ("trade_register_no", ""),
                                          ("vat_payer", False), ("efactura_registered", False))}


def company_view(row: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"cif": row["cif"], "name": row["name"], "address": row["address"],
            "trade_register_no": row["trade_register_no"], "vat_payer": row["vat_payer"],
            "efactura_registered": row["efactura_registered"],
            "provides_accounting_services": row["provides_accounting_services"],
            "registry_checked_at": row["registry_checked_at"], **extra}


# -- companies --------------------------------------------------------------------------------------------
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


async def registry_lookup(uow: SqlUnitOfWork, deps: Deps, raw_cif: str) -> dict[str, Any]:
    """What typing a CIF gives anyone signed in: ANAF's public registry data, shown before the person confirms
    the registration. Registers nothing and grants nothing."""
    cif = domain.normalize_cif(raw_cif)
    reg = (await registry_data(uow, deps, [cif])).get(cif)
    if reg is None or not reg["found"]:
        raise AppError(f"CIF {cif} is valid but ANAF's public registry has no company with it. Check the number.",
                       code="cif_not_in_registry", status=422, details={"cif": cif})
    return {"cif": cif, **_company_fields(reg)}


async def register_company(uow: SqlUnitOfWork, deps: Deps, user_id: str, raw_cif: str) -> tuple[dict[str, Any], bool]:
    """Register a company by CIF alone. Registering proves nothing: the caller becomes an *unverified* member
    (owner once verified, if nobody was verified before) and sees the registry data only. A CIF is never locked by
    an unverified registration; when the company already has a verified owner, the registration is a join request
    its owners and administrators are told about. Returns (company, created)."""
    cif = domain.normalize_cif(raw_cif)
    existing = await repo.get_company(uow.session, cif, lock=True)
    if existing is not None:
        m = await repo.direct_membership(uow.session, user_id, cif)
        if m is not None:
            return company_view(existing, role=m.role, relation="own", **_verification(m.verified)), False
    reg = (await registry_data(uow, deps, [cif])).get(cif)
    if reg is None or not reg["found"]:
        raise AppError(f"CIF {cif} is valid but ANAF's public registry has no company with it. Check the number.",
                       code="cif_not_in_registry", status=422, details={"cif": cif},
                       messages={"ro": f"CIF {cif} este valid, dar registrul public ANAF nu are nicio companie cu "
                                       "acest cod. Verificați numărul."})
    now = deps.clock.now()
    fields = _company_fields(reg)
    if existing is None:
        if not await repo.insert_company(uow.session, {"cif": cif, **fields, "registry_checked_at": now,
                                                       "registered_by": user_id, "created_at": now,
                                                       "updated_at": now}):
            raise Conflict(f"Company CIF {cif} is being registered right now; try again in a moment.",
                           code="registration_in_progress", details={"cif": cif})
        row = await repo.get_company(uow.session, cif)
        assert row is not None
        uow.publish(CompanyRegistered(cif=cif, registered_by=user_id,
                                      provides_accounting_services=row["provides_accounting_services"], **fields))
    else:
        await repo.update_company(uow.session, cif, {**fields, "registry_checked_at": now, "updated_at": now})
    role = Role.OWNER.value
    if await repo.has_verified_owner(uow.session, cif):
        role = Role.MEMBER.value  # asks to join; the owners decide the role when they approve
        managers = await repo.verified_people(uow.session, cif, domain.MANAGERS)
        uow.publish(JoinRequested(cif=cif, user_id=user_id, via="registration", notify_user_ids=managers))
    await repo.upsert_member(uow.session, cif, user_id, role)
    row = await repo.get_company(uow.session, cif)
    assert row is not None
    await sync_access(uow, {cif})
    return company_view(row, role=role, relation="own", **_verification(False)), True


async def get_company(uow: SqlUnitOfWork, user_id: str, raw_cif: str) -> dict[str, Any]:
    cif = domain.normalize_cif(raw_cif)
    grant = await require_role(uow, user_id, cif, allow_unverified=True)
    row = await repo.get_company(uow.session, cif)
    if row is None:
        raise NotFound(f"Company CIF {cif} is not registered.", code="company_not_found")
    extra: dict[str, Any] = {"role": grant.role, "relation": "client" if grant.via_firm_cif else "own",
                             "can_file": grant.can_file, **_verification(grant.verified)}
    if grant.via_firm_cif:
        extra["via_firm_cif"] = grant.via_firm_cif
    return company_view(row, **extra)


async def list_companies(uow: SqlUnitOfWork, user_id: str) -> list[dict[str, Any]]:
    """The caller's own companies (verified or not), then the clients of the firms the caller is a verified member
    of, each marked."""
    own = await repo.user_memberships(uow.session, user_id)
    own_roles = {m["cif"]: m["role"] for m in own}
    own_verified = {m["cif"]: m["verified_at"] is not None for m in own}
    firms = [c for c, v in own_verified.items() if v]
    collabs = await repo.open_collaborations_of_firms(uow.session, firms)
    rows = await repo.company_rows(uow.session, set(own_roles) | {c["client_cif"] for c in collabs})
    out: list[dict[str, Any]] = []
    for cif in sorted(own_roles, key=lambda c: (rows.get(c, {}).get("name", ""), c)):
        if cif in rows:
            out.append(company_view(rows[cif], relation="own", role=own_roles[cif],
                                    can_file=own_verified[cif] and own_roles[cif] in domain.MANAGERS,
                                    **_verification(own_verified[cif])))
    for c in sorted(collabs, key=lambda c: (rows.get(c["client_cif"], {}).get("name", ""), c["client_cif"])):
        if c["client_cif"] in own_roles or c["client_cif"] not in rows:
            continue
        active = c["status"] == "active"
        out.append(company_view(rows[c["client_cif"]], relation="client",
                                role=Role.ACCOUNTANT.value if active else None,
                                via_firm_cif=c["firm_cif"], collaboration_status=c["status"],
                                collaboration_id=c["id"], accessible=active, can_file=active and c["may_file"],
                                verification="verified" if active else "not_applicable"))
    return out


async def update_company_profile(uow: SqlUnitOfWork, deps: Deps, user_id: str, raw_cif: str,
                                 provides_accounting_services: bool | None) -> dict[str, Any]:
    cif = domain.normalize_cif(raw_cif)
    role = (await require_role(uow, user_id, cif, domain.MANAGERS, direct_only=True)).role
    row = await repo.get_company(uow.session, cif, lock=True)
    if row is None:
        raise NotFound(f"Company CIF {cif} is not registered.", code="company_not_found")
    if provides_accounting_services is not None and provides_accounting_services != row["provides_accounting_services"]:
        await repo.update_company(uow.session, cif, {"provides_accounting_services": provides_accounting_services,
                                                     "updated_at": deps.clock.now()})
        row = await repo.get_company(uow.session, cif)
        assert row is not None
        _publish_updated(uow, row)
    return company_view(row, role=role, relation="own")


def _publish_updated(uow: SqlUnitOfWork, row: dict[str, Any]) -> None:
    uow.publish(CompanyUpdated(cif=row["cif"], name=row["name"], address=row["address"],
                               trade_register_no=row["trade_register_no"], vat_payer=row["vat_payer"],
                               efactura_registered=row["efactura_registered"],
                               provides_accounting_services=row["provides_accounting_services"]))


# -- members ----------------------------------------------------------------------------------------------
async def list_members(uow: SqlUnitOfWork, user_id: str, raw_cif: str) -> list[dict[str, Any]]:
    """Members with their role and verification; unverified ones are requests an owner or admin approves (by
    setting their role) or drops (by removing them)."""
    cif = domain.normalize_cif(raw_cif)
    await require_role(uow, user_id, cif, direct_only=True)
    rows = await repo.members(uow.session, cif)
    people = await repo.users_by_id(uow.session, [m["user_id"] for m in rows])
    return [{"user_id": m["user_id"], "email": people.get(m["user_id"], {}).get("email"),
             "name": people.get(m["user_id"], {}).get("name"), "role": m["role"], "since": m["created_at"],
             "verified": m["verified_at"] is not None, "verified_via": m["verified_via"],
             "status": "active" if m["verified_at"] is not None else "pending_approval"}
            for m in rows]


async def add_member(uow: SqlUnitOfWork, deps: Deps, actor: str, raw_cif: str, email: str,
                     role: str) -> dict[str, Any]:
    """A verified owner or administrator adds an existing platform user, named by e-mail; the new member is
    verified by that grant."""
    cif = domain.normalize_cif(raw_cif)
    await require_role(uow, actor, cif, domain.MANAGERS, direct_only=True)
    user = await repo.user_by_email(uow.session, email)
    if user is None:
        raise NotFound("No platform account uses this e-mail address. Ask the person to sign up first, then add "
                       "them again.", code="user_not_found",
                       messages={"ro": "Nicio cont de pe platformă nu folosește această adresă de e-mail. Rugați "
                                       "persoana să își creeze un cont, apoi adăugați-o din nou."})
    return await set_member(uow, deps, actor, cif, user["user_id"], role, adding=True)


async def set_member(uow: SqlUnitOfWork, deps: Deps, actor: str, raw_cif: str, member_id: str, role: str, *,
                     adding: bool = False) -> dict[str, Any]:
    """Change a member's role, or approve a pending (unverified) member with a role (owner/admin only; admins never
    touch owners). Only `add_member` adds someone new."""
    cif = domain.normalize_cif(raw_cif)
    if role not in [r.value for r in domain.MEMBER_ROLES]:
        raise AppError("role must be owner, admin or member.", code="invalid_role", status=422)
    actor_role = (await require_role(uow, actor, cif, domain.MANAGERS, direct_only=True)).role
    await repo.get_company(uow.session, cif, lock=True)  # serialise membership changes of one company
    current = await repo.direct_membership(uow.session, member_id, cif)
    if current is None and not adding:
        raise NotFound(f"User {member_id} is not a member of CIF {cif}; add people by their e-mail address.",
                       code="member_not_found")
    current_role = current.role if current and current.verified else None
    if not domain.can_assign(actor_role, role, current_role):
        raise Forbidden("Only an owner can make or change owners.", code="insufficient_role",
                        details={"cif": cif, "role": actor_role})
    if current_role == Role.OWNER and role != Role.OWNER:
        await _keep_one_owner(uow, cif, member_id)
    if current is not None and current.verified:
        await repo.upsert_member(uow.session, cif, member_id, role)
        await sync_access_of_firm(uow, cif)
        return {"user_id": member_id, "role": role, "verified": True}
    # a new or pending member: the grant is their proof of control, applied once their e-mail is verified
    await repo.upsert_member(uow.session, cif, member_id, role)
    verified = await verify_member(uow, deps, cif, member_id, "grant")
    if not verified:
        await sync_access_of_firm(uow, cif)
    return {"user_id": member_id, "role": role, "verified": verified}


async def remove_member(uow: SqlUnitOfWork, actor: str, raw_cif: str, member_id: str) -> None:
    cif = domain.normalize_cif(raw_cif)
    if actor == member_id:
        await require_role(uow, actor, cif, direct_only=True, allow_unverified=True)  # anyone may leave
        actor_role = Role.OWNER.value
    else:
        actor_role = (await require_role(uow, actor, cif, domain.MANAGERS, direct_only=True)).role
    await repo.get_company(uow.session, cif, lock=True)
    current = await repo.direct_membership(uow.session, member_id, cif)
    if current is None:
        raise NotFound(f"User {member_id} is not a member of CIF {cif}.", code="member_not_found")
    current_role = current.role if current.verified else None
    if not domain.can_assign(actor_role, Role.MEMBER.value, current_role):
        raise Forbidden("Only an owner can remove an owner.", code="insufficient_role")
    if current_role == Role.OWNER:
        await _keep_one_owner(uow, cif, member_id)
    await repo.delete_member(uow.session, cif, member_id)
    await sync_access_of_firm(uow, cif)


async def _keep_one_owner(uow: SqlUnitOfWork, cif: str, leaving: str) -> None:
    owners = [u for u in await repo.verified_people(uow.session, cif, [Role.OWNER.value]) if u != leaving]
    if not owners:
        raise Conflict("A company needs at least one owner: make someone else owner first.", code="last_owner")


async def on_user_registered(ev: UserRegistered, _env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    """Keep the account directory that lets owners add people by e-mail."""
    await repo.upsert_user(uow.session, ev.user_id, ev.email, ev.name, ev.email_verified)


async def on_email_verified(ev: EmailVerified, _env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    """The person's e-mail is verified (or changed and confirmed): apply the proofs of control that waited."""
    await repo.set_email_verified(uow.session, ev.user_id, ev.email)
    for cif, via in await repo.take_pending_verifications(uow.session, ev.user_id):
        await verify_member(uow, deps, cif, ev.user_id, via)


# -- connections (auth events) --------------------------------------------------------------------------
async def on_connection_authorized(ev: ConnectionAuthorized, _env: CloudEvent, uow: SqlUnitOfWork,
                                   deps: Deps) -> None:
    """Record the connection, verify the member who authorized it when ANAF confirmed the certificate's rights on
    the company, and discover the rights of its certificate holder right away."""
    holder = domain.normalize_cif(ev.company_cif)
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
    if conn is not None and conn["status"] == ConnectionStatus.REAUTHORIZATION_REQUIRED:
        await repo.set_connection(uow.session, ev.connection_id, {"status": ConnectionStatus.ACTIVE.value,
                                                                   "status_reason": ""})
        await sync_entitlements(uow, await connection_scope(uow, ev.connection_id, conn["holder_cif"]))


async def on_reauthorization_required(ev: ReauthorizationRequired, _env: CloudEvent, uow: SqlUnitOfWork,
                                      deps: Deps) -> None:
    """The connection acts for nobody until someone authorizes again. Its holder's people hear about it from auth;
    a collaborating client is told only if no other connection covers it."""
    conn = await repo.get_connection(uow.session, ev.connection_id, lock=True)
    if conn is not None and conn["status"] != ConnectionStatus.REVOKED:
        await repo.set_connection(uow.session, ev.connection_id, {
            "status": ConnectionStatus.REAUTHORIZATION_REQUIRED.value, "status_reason": ev.message or ev.reason})
        who = conn["holder_name"] or conn["holder_cif"]
        scope = await connection_scope(uow, ev.connection_id, conn["holder_cif"])
        await sync_entitlements(uow, scope - {conn["holder_cif"]}, reason="reauthorization_required",
                                message=f"The ANAF authorization of {who} (CIF {conn['holder_cif']}) must be renewed "
                                        "by a person; until then your e-Factura invoices are not downloaded.")
        await sync_entitlements(uow, {conn["holder_cif"]}, quiet=True)


async def on_connection_revoked(ev: ConnectionRevoked, _env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    """A revoked connection acts for nobody: every right it had is lost. Only the companies whose sync stops (no
    other entitled connection) hear about it, each its own people."""
    conn = await repo.get_connection(uow.session, ev.connection_id, lock=True)
    if conn is None or conn["status"] == ConnectionStatus.REVOKED:
        return
    await repo.set_connection(uow.session, ev.connection_id, {"status": ConnectionStatus.REVOKED.value,
                                                               "status_reason": ev.reason})
    scope = await connection_scope(uow, ev.connection_id, conn["holder_cif"])
    previous = await repo.rights_of(uow.session, ev.connection_id)
    if previous:
        lost = sorted(previous, key=int)
        await repo.replace_rights(uow.session, ev.connection_id, [], lost, [], deps.clock.now())
        uow.publish(RightsDiscovered(connection_id=ev.connection_id, holder_cif=conn["holder_cif"], cifs=[],
                                     gained=[], lost=lost, services=conn["services"] or ["efactura"], mode="revoked",
                                     complete=True))
    who = conn["holder_name"] or conn["holder_cif"]
    await sync_entitlements(uow, scope, reason="connection_revoked",
                            message=f"The ANAF authorization of {who} (CIF {conn['holder_cif']}) was revoked, and no "
                                    "other authorization covers this company: its e-Factura invoices are no longer "
                                    "downloaded. Authorize ANAF access again to resume.")


# -- discovery --------------------------------------------------------------------------------------------
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

    async def list(self, efactura: EfacturaListPort, cif: str, days: int) -> Any:
        used = self.token
        try:
            return await efactura.list_messages(used.access_token, cif, days)
        except Unauthorized:
            async with self.lock:
                if self.token is used:
                    self.token = await self.tokens.refresh(used.connection_id)
            return await efactura.list_messages(self.token.access_token, cif, days)


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
    if conn["status"] != ConnectionStatus.ACTIVE:
        raise Conflict(f"The e-Factura authorization of CIF {conn['holder_cif']} is {conn['status']}: authorize "
                       "again before discovering the portfolio.", code="no_active_efactura_authorization",
                       details={"connection_id": connection_id, "status": conn["status"]})
    holder = conn["holder_cif"]
    try:
        token = await deps.tokens.access_token(connection_id)
    except ConnectionUnavailable as e:
        if e.code == "reauthorization_required":
            await repo.set_connection(uow.session, connection_id, {
                "status": ConnectionStatus.REAUTHORIZATION_REQUIRED.value, "status_reason": e.message})
        raise
    shared = _SharedToken(token, deps.tokens)
    first, shared.token = await list_with_refresh(deps.efactura, deps.tokens, token, holder, deps.discovery_days)
    found: set[str] = set()
    unknown: set[str] = set()
    inventory = domain.inventory_from_cui_field(holder, first.cui_field)
    probed = 1
    if inventory is not None:
        mode = "inventory"
        found = set(inventory)
    else:
        mode = "probe"
        if first.has_rights:
            found.add(holder)
        previous = await repo.rights_of(uow.session, connection_id)
        pool = (set(await repo.all_company_cifs(uow.session)) | set(await repo.candidates_of(uow.session, holder))
                | previous) - {holder}
        seen_inventory: list[list[str]] = []

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
                inv = domain.inventory_from_cui_field(cif, res.cui_field)
                if inv is not None:
                    seen_inventory.append(inv)

        # In waves: as soon as one answer carries the inventory (a candidate whose inbox is not empty),
        # it settles the whole portfolio and the remaining probes are not spent.
        ordered = sorted(pool, key=int)
        step = max(1, deps.probe_concurrency)
        for i in range(0, len(ordered), step):
            wave = ordered[i:i + step]
            await asyncio.gather(*(probe(c) for c in wave))
            probed += len(wave)
            if seen_inventory:
                mode, found, unknown = "inventory", set(seen_inventory[0]), set()
                break
    return await _record_discovery(uow, deps, conn, mode, found, unknown, probed, trigger)


async def _record_discovery(uow: SqlUnitOfWork, deps: Deps, conn: dict[str, Any], mode: str, found: set[str],
                            unknown: set[str], probed: int, trigger: str) -> DiscoveryResult:
    connection_id, holder = conn["connection_id"], conn["holder_cif"]
    now = deps.clock.now()
    previous = await repo.rights_of(uow.session, connection_id)
    d = domain.diff_rights(previous, found, unknown)
    await repo.replace_rights(uow.session, connection_id, d.gained, d.lost, sorted(found & previous), now)
    reg = await registry_data(uow, deps, d.cifs, best_effort=True)  # enrich; the daily refresh retries failures
    names = {c: r["name"] for c, r in reg.items() if r["found"] and r["name"] and c in d.cifs}
    complete = not unknown
    await repo.set_connection(uow.session, connection_id, {
        "last_discovery_at": now, "last_discovery_mode": mode, "last_discovery_complete": complete,
        "last_discovery_error": None if complete else f"{len(unknown)} candidate(s) could not be checked",
        "last_discovery_count": len(d.cifs)})
    services = conn["services"] or ["efactura"]
    if trigger != "recheck" or d.gained or d.lost:
        uow.publish(RightsDiscovered(connection_id=connection_id, holder_cif=holder, cifs=d.cifs, gained=d.gained,
                                     lost=d.lost, services=services, mode=mode, complete=complete, names=names))
    if holder in d.cifs and conn["user_id"]:
        # ANAF's own answer names the holder: the member who authorized has proven control.
        await verify_member(uow, deps, holder, conn["user_id"], "authorization")
    if d.gained or d.lost:
        who = conn["holder_name"] or f"the certificate holder of CIF {holder}"
        await sync_entitlements(uow, set(d.gained) | set(d.lost), reason="spv_rights_removed",
                                message=f"The certificate of {who} no longer has SPV rights on this company (ANAF: "
                                        "\"Nu aveti drept in SPV\"), and no other authorization covers it: its "
                                        "e-Factura invoices are no longer downloaded. The company must grant the "
                                        "rights again in SPV (a new enrolment takes about a day), or authorize with a "
                                        "certificate that has them.")
    log.info("rights discovered", connection_id=connection_id, holder=holder, mode=mode, count=len(d.cifs),
             gained=len(d.gained), lost=len(d.lost), unknown=len(unknown), trigger=trigger)
    return DiscoveryResult(connection_id, holder, mode, complete, d.cifs, d.gained, d.lost,
                           sorted(unknown, key=int), probed)


async def discover_recording_errors(uow: SqlUnitOfWork, deps: Deps, connection_id: str, *,
                                    trigger: str) -> DiscoveryResult | None:
    """Discovery from an event or a job: a failure is recorded on the connection (and retried by the re-check
    job) instead of failing the message."""
    try:
        return await discover(uow, deps, connection_id, trigger=trigger)
    except (ConnectionUnavailable, AnafError, ConnectionError, AppError) as e:
        text = getattr(e, "text", None) or getattr(e, "message", None) or str(e)
        log.warning("discovery failed", connection_id=connection_id, error=text[:300], trigger=trigger)
        await repo.set_connection(uow.session, connection_id, {
            "last_discovery_at": deps.clock.now(), "last_discovery_complete": False,
            "last_discovery_error": f"{type(e).__name__}: {text}"[:1000]})
        return None


async def discover_on_demand(uow: SqlUnitOfWork, deps: Deps, user_id: str, raw_cif: str) -> dict[str, Any]:
    cif = domain.normalize_cif(raw_cif)
    await require_role(uow, user_id, cif, domain.MANAGERS, direct_only=True)
    conns = [c for c in await repo.connections_of_holder(uow.session, cif)
             if c["status"] == ConnectionStatus.ACTIVE and "efactura" in (c["services"] or [])]
    if not conns:
        raise Conflict(f"CIF {cif} has no active e-Factura authorization: authorize e-Factura with the firm's "
                       "certificate first.", code="no_active_efactura_authorization", details={"cif": cif})
    results = []
    for c in conns:
        try:
            results.append((await discover(uow, deps, c["connection_id"], trigger="on_demand")).view())
        except ConnectionUnavailable as e:
            await uow.commit()  # keep the status change (reauthorization required)
            raise Conflict(f"The e-Factura authorization of CIF {cif} must be renewed by the certificate holder.",
                           code=e.code, details={"connection_id": c["connection_id"]}) from e
        except (BudgetExhausted, LimitReached) as e:
            raise AppError("ANAF's call limits are reached for now; discovery will run again automatically.",
                           code="anaf_limit_reached", status=429, details={"anaf": e.text}) from e
        except AnafError as e:
            raise AppError("ANAF could not be queried; try again later.", code="anaf_unavailable", status=503,
                           details={"anaf": e.text}) from e
    cifs = sorted({x for r in results for x in r["cifs"]}, key=int)
    return {"cif": cif, "count": len(cifs), "cifs": cifs, "connections": results}


# -- candidates --------------------------------------------------------------------------------------------
MAX_CANDIDATES = 20_000


async def upload_candidates(uow: SqlUnitOfWork, user_id: str, raw_cif: str, text: str) -> dict[str, Any]:
    cif = domain.normalize_cif(raw_cif)
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


async def list_candidates(uow: SqlUnitOfWork, user_id: str, raw_cif: str) -> dict[str, Any]:
    cif = domain.normalize_cif(raw_cif)
    await require_role(uow, user_id, cif, direct_only=True)
    return {"cif": cif, "candidates": await repo.candidates_of(uow.session, cif)}


# -- discovered companies and portfolio status -------------------------------------------------------------
async def list_discovered(uow: SqlUnitOfWork, deps: Deps, user_id: str, raw_cif: str) -> dict[str, Any]:
    firm = domain.normalize_cif(raw_cif)
    await require_role(uow, user_id, firm, direct_only=True)
    rows = [r for r in await repo.discovered_for_holder(uow.session, firm) if r["cif"] != firm]
    reg = await repo.registry_rows(uow.session, [r["cif"] for r in rows])
    collabs = await repo.latest_collaborations(uow.session, firm)
    invites = await repo.invitations_of_firm(uow.session, firm)
    items = []
    for r in sorted(rows, key=lambda r: (reg.get(r["cif"], {}).get("name", ""), r["cif"])):
        g = reg.get(r["cif"])
        c = collabs.get(r["cif"])
        inv = invites.get(r["cif"])
        items.append({"cif": r["cif"], **_company_fields(g), "registry_found": bool(g and g["found"]),
                      "discovered_at": r["discovered_at"], "confirmed_at": r["confirmed_at"],
                      "invited": bool(inv and inv["status"] in ("sent", "claimed")) or bool(
                          c and c["status"] == CollaborationStatus.PENDING),
                      "invitation_status": inv["status"] if inv else None,
                      "collaboration_status": c["status"] if c else None,
                      "collaborating": bool(c and c["status"] == CollaborationStatus.ACTIVE)})
    return {"firm_cif": firm, "count": len(items), "companies": items}


async def portfolio_status(uow: SqlUnitOfWork, user_id: str, raw_cif: str) -> dict[str, Any]:
    """What blocks the firm's portfolio: the accounting-services flag, an active e-Factura authorization,
    each client's acceptance."""
    firm = domain.normalize_cif(raw_cif)
    await require_role(uow, user_id, firm, direct_only=True)
    row = await repo.get_company(uow.session, firm)
    if row is None:
        raise NotFound(f"Company CIF {firm} is not registered.", code="company_not_found")
    blockers: list[dict[str, Any]] = []
    if not row["provides_accounting_services"]:
        blockers.append({"code": "accounting_services_flag_missing",
                         "message": "The company profile is not marked \"provides accounting services\"; an owner or "
                                    "administrator can set it (PATCH the company)."})
    conns = await repo.connections_of_holder(uow.session, firm)
    ef = [c for c in conns if "efactura" in (c["services"] or [])]
    active = [c for c in ef if c["status"] == ConnectionStatus.ACTIVE]
    auth_view: dict[str, Any] = {"status": "missing"}
    if active:
        c = active[0]
        auth_view = {"status": "active", "connection_id": c["connection_id"], "holder_name": c["holder_name"],
                     "authorized_at": c["authorized_at"], "last_discovery_at": c["last_discovery_at"],
                     "last_discovery_mode": c["last_discovery_mode"], "discovered_count": c["last_discovery_count"],
                     "last_discovery_complete": c["last_discovery_complete"],
                     "last_discovery_error": c["last_discovery_error"]}
    elif ef:
        c = ef[0]
        auth_view = {"status": c["status"], "connection_id": c["connection_id"], "reason": c["status_reason"]}
    if not active:
        blockers.append({"code": "no_active_efactura_authorization",
                         "message": "There is no active e-Factura authorization with the firm's certificate"
                                    + (f" (the last one is {auth_view['status']})" if ef else "")
                                    + ": authorize e-Factura for the firm's CIF."})
    discovered = {r["cif"] for r in await repo.discovered_for_holder(uow.session, firm)} - {firm}
    collabs = await repo.latest_collaborations(uow.session, firm)
    invites = await repo.invitations_of_firm(uow.session, firm)
    names = await repo.registry_rows(uow.session, discovered | set(collabs))
    clients = []
    for cif in sorted(discovered | set(collabs), key=int):
        collab = collabs.get(cif)
        status = collab["status"] if collab else None
        inv = invites.get(cif)
        client_blockers = []
        if status != CollaborationStatus.ACTIVE:
            client_blockers.append("client_acceptance_missing" if status == CollaborationStatus.PENDING or (
                inv and inv["status"] in ("sent", "claimed")) else "not_invited" if status is None else
                "collaboration_ended")
        if active and cif not in discovered:
            client_blockers.append("no_spv_rights")
        clients.append({"cif": cif, "name": (names.get(cif) or {}).get("name", ""), "collaboration_status": status,
                        "invitation_status": inv["status"] if inv else None, "spv_rights": cif in discovered,
                        "blocked_by": client_blockers})
    pending = [c["cif"] for c in clients if "client_acceptance_missing" in c["blocked_by"]]
    if pending:
        blockers.append({"code": "client_acceptance_missing", "cifs": pending,
                         "message": f"{len(pending)} client(s) have not accepted the collaboration yet."})
    return {"firm_cif": firm, "ready": not [b for b in blockers if b["code"] != "client_acceptance_missing"],
            "provides_accounting_services": row["provides_accounting_services"], "efactura_authorization": auth_view,
            "blockers": blockers, "clients": clients}


# -- collaborations ----------------------------------------------------------------------------------------
async def _ensure_company(uow: SqlUnitOfWork, deps: Deps, cif: str, user_id: str | None) -> dict[str, Any]:
    """The company row, created from the registry when new (publishes company-registered)."""
    row = await repo.get_company(uow.session, cif, lock=True)
    if row is not None:
        return row
    reg = (await registry_data(uow, deps, [cif], best_effort=True)).get(cif)
    fields = _company_fields(reg if reg and reg["found"] else None)
    now = deps.clock.now()
    await repo.insert_company(uow.session, {"cif": cif, **fields, "registered_by": user_id, "created_at": now,
                                            "updated_at": now, "registry_checked_at": now if reg else None})
    row = await repo.get_company(uow.session, cif, lock=True)
    assert row is not None
    uow.publish(CompanyRegistered(cif=cif, registered_by=user_id, **fields))
    return row


async def on_invitation_sent(ev: InvitationSent, _env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    await repo.upsert_invitation(uow.session, ev.invitation_id, domain.normalize_cif(ev.firm_cif),
                                 domain.normalize_cif(ev.client_cif), "sent", deps.clock.now())


async def _firm_covers(uow: SqlUnitOfWork, firm: str, client: str) -> bool:
    """The firm holds an active authorization whose certificate has SPV rights on the client."""
    return any(f.active and client in f.rights and f.holder_cif == firm
               for f in await repo.connection_facts_for(uow.session, client))


async def on_invitation_claimed(ev: InvitationClaimed, _env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    """The client's representative created an account from the link. A link proves only that the firm chose this
    e-mail address, so: when the company has no verified owner yet and the firm's certificate has SPV rights on it,
    the claimant becomes its verified owner; when it has one, the claim is a join request its owners decide on;
    otherwise the claimant is an unverified member until they prove control. A pending collaboration opens."""
    firm, client = domain.normalize_cif(ev.firm_cif), domain.normalize_cif(ev.client_cif)
    now = deps.clock.now()
    await repo.upsert_invitation(uow.session, ev.invitation_id, firm, client, "claimed", now)
    await _ensure_company(uow, deps, client, ev.user_id)
    existing = await repo.direct_membership(uow.session, ev.user_id, client)
    if await repo.has_verified_owner(uow.session, client):
        if existing is None:
            await repo.upsert_member(uow.session, client, ev.user_id, Role.MEMBER.value)
            uow.publish(JoinRequested(cif=client, user_id=ev.user_id, via="invitation", invitation_id=ev.invitation_id,
                                      firm_cif=firm,
                                      notify_user_ids=await repo.verified_people(uow.session, client, domain.MANAGERS)))
            log.info("claim on a company with a verified owner became a join request", cif=client, user_id=ev.user_id)
    else:
        if existing is None:
            await repo.upsert_member(uow.session, client, ev.user_id, Role.OWNER.value)
        if await _firm_covers(uow, firm, client):
            await verify_member(uow, deps, client, ev.user_id, "invitation")
    if await repo.open_collaboration(uow.session, firm, client, lock=True) is None:
        await repo.insert_collaboration(uow.session, {
            "id": str(uuid.uuid4()), "firm_cif": firm, "client_cif": client, "status": "pending",
            "invitation_id": ev.invitation_id, "created_at": now})
    await sync_access(uow, {client})


async def on_invitation_accepted(ev: InvitationAccepted, _env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    """The client accepted: the collaboration is active and the firm's users reach the client's data. Only a
    verified owner or administrator of the client can consent; anything else is refused here too, whatever the
    invitations service let through."""
    firm, client = domain.normalize_cif(ev.firm_cif), domain.normalize_cif(ev.client_cif)
    now = deps.clock.now()
    accepter = await repo.direct_membership(uow.session, ev.user_id, client)
    if accepter is None or not accepter.verified or accepter.role not in domain.MANAGERS:
        log.warning("acceptance by someone who cannot consent for the client ignored", cif=client,
                    user_id=ev.user_id, invitation_id=ev.invitation_id)
        return
    await repo.upsert_invitation(uow.session, ev.invitation_id, firm, client, "accepted", now)
    c = await repo.open_collaboration(uow.session, firm, client, lock=True)
    if c is None:
        await repo.insert_collaboration(uow.session, {
            "id": str(uuid.uuid4()), "firm_cif": firm, "client_cif": client, "status": "active",
            "invitation_id": ev.invitation_id, "created_at": now, "activated_at": now})
    elif c["status"] == CollaborationStatus.PENDING:
        await repo.set_collaboration(uow.session, c["id"], {"status": "active", "activated_at": now,
                                                            "invitation_id": ev.invitation_id})
    else:
        return  # already active
    uow.publish(CollaborationStarted(firm_cif=firm, client_cif=client, may_file=False, accepted_by=ev.user_id))
    await sync_access(uow, {client})
    await sync_entitlements(uow, {client})


async def _close_pending(ev: InvitationDeclined | InvitationExpired | InvitationRevoked, uow: SqlUnitOfWork, deps: Deps,
                         status: str) -> None:
    firm, client = domain.normalize_cif(ev.firm_cif), domain.normalize_cif(ev.client_cif)
    now = deps.clock.now()
    await repo.upsert_invitation(uow.session, ev.invitation_id, firm, client, status, now)
    c = await repo.open_collaboration(uow.session, firm, client, lock=True)
    if c is not None and c["status"] == CollaborationStatus.PENDING and c["invitation_id"] == ev.invitation_id:
        await repo.set_collaboration(uow.session, c["id"], {"status": "ended", "ended_at": now,
                                                            "end_reason": f"invitation_{status}"})
        uow.publish(CollaborationEnded(firm_cif=firm, client_cif=client, reason=f"invitation_{status}"))


async def on_invitation_declined(ev: InvitationDeclined, _env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    await _close_pending(ev, uow, deps, "declined")


async def on_invitation_expired(ev: InvitationExpired, _env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    await _close_pending(ev, uow, deps, "expired")


async def on_invitation_revoked(ev: InvitationRevoked, _env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    await _close_pending(ev, uow, deps, "revoked")


def collaboration_view(c: dict[str, Any], names: dict[str, Any], perspective: str) -> dict[str, Any]:
    other = c["client_cif"] if perspective == c["firm_cif"] else c["firm_cif"]
    return {"id": c["id"], "firm_cif": c["firm_cif"], "client_cif": c["client_cif"], "status": c["status"],
            "side": "firm" if perspective == c["firm_cif"] else "client", "counterpart_cif": other,
            "counterpart_name": (names.get(other) or {}).get("name", ""), "created_at": c["created_at"],
            "activated_at": c["activated_at"], "ended_at": c["ended_at"], "end_reason": c["end_reason"],
            "may_file": bool(c.get("may_file"))}


async def list_collaborations(uow: SqlUnitOfWork, user_id: str, raw_cif: str) -> list[dict[str, Any]]:
    cif = domain.normalize_cif(raw_cif)
    await require_role(uow, user_id, cif, direct_only=True)
    rows = await repo.collaborations_of(uow.session, cif)
    names = await repo.company_rows(uow.session, {c["firm_cif"] for c in rows} | {c["client_cif"] for c in rows})
    return [collaboration_view(c, names, cif) for c in rows]


async def end_collaboration(uow: SqlUnitOfWork, deps: Deps, user_id: str, raw_cif: str, raw_other: str,
                            reason: str) -> dict[str, Any]:
    """Either side (an owner or administrator) ends the collaboration; the firm's users lose the client."""
    cif, other = domain.normalize_cif(raw_cif), domain.normalize_cif(raw_other)
    await require_role(uow, user_id, cif, domain.MANAGERS, direct_only=True)
    c = await repo.open_collaboration(uow.session, cif, other, lock=True) or await repo.open_collaboration(
        uow.session, other, cif, lock=True)
    if c is None:
        raise NotFound(f"CIF {cif} has no open collaboration with CIF {other}.", code="collaboration_not_found")
    now = deps.clock.now()
    why = reason or ("ended_by_firm" if c["firm_cif"] == cif else "ended_by_client")
    await repo.set_collaboration(uow.session, c["id"], {"status": "ended", "ended_at": now, "ended_by": user_id,
                                                        "end_reason": why})
    uow.publish(CollaborationEnded(firm_cif=c["firm_cif"], client_cif=c["client_cif"], reason=why))
    await sync_access(uow, {c["client_cif"]})
    await sync_entitlements(uow, {c["client_cif"]}, reason="collaboration_ended",
                            message=f"The collaboration with the accounting firm (CIF {c['firm_cif']}) ended and no "
                                    "other ANAF authorization covers this company: its e-Factura invoices are no "
                                    "longer downloaded. Authorize ANAF access for the company to resume.")
    names = await repo.company_rows(uow.session, {c["firm_cif"], c["client_cif"]})
    return collaboration_view({**c, "status": "ended", "ended_at": now, "end_reason": why}, names, cif)


async def set_collaboration_permissions(uow: SqlUnitOfWork, user_id: str, raw_cif: str, raw_firm: str,
                                        may_file: bool) -> dict[str, Any]:
    """The client's verified owner or administrator decides whether the firm may file in the client's name."""
    client, firm = domain.normalize_cif(raw_cif), domain.normalize_cif(raw_firm)
    await require_role(uow, user_id, client, domain.MANAGERS, direct_only=True)
    c = await repo.open_collaboration(uow.session, firm, client, lock=True)
    if c is None or c["status"] != CollaborationStatus.ACTIVE:
        raise NotFound(f"CIF {client} has no active collaboration with the accounting firm CIF {firm}.",
                       code="collaboration_not_found")
    if c["may_file"] != may_file:
        await repo.set_collaboration(uow.session, c["id"], {"may_file": may_file})
        uow.publish(CollaborationPermissionsChanged(firm_cif=firm, client_cif=client, may_file=may_file,
                                                    changed_by=user_id))
        await sync_access(uow, {client})
        await sync_entitlements(uow, {client})
    names = await repo.company_rows(uow.session, {firm, client})
    return collaboration_view({**c, "may_file": may_file}, names, client)


# -- jobs --------------------------------------------------------------------------------------------------
def discovery_due(conn: dict[str, Any], now: datetime, deps: Deps) -> bool:
    last = conn["last_discovery_at"]
    if "efactura" not in (conn["services"] or []) or conn["status"] != ConnectionStatus.ACTIVE:
        return False
    if last is None:
        return True
    if conn["last_discovery_complete"] is False:
        return now - last >= deps.retry_incomplete_after
    return now - last >= deps.recheck_interval


async def refresh_registry(uow: SqlUnitOfWork, deps: Deps, limit: int = 500) -> int:
    """Refresh registry data of companies older than `registry_max_age`; publish company-updated on changes.
    Returns how many companies were refreshed (0 when none is due or ANAF failed)."""
    now = deps.clock.now()
    due = await repo.companies_due_for_registry(uow.session, now - deps.registry_max_age, limit)
    if not due:
        return 0
    try:
        fetched: dict[str, RegistryRecord] = await deps.registry.lookup([r["cif"] for r in due])
    except AnafError as e:
        log.warning("registry refresh failed", error=e.text)
        return 0
    await repo.save_registry(uow.session, fetched.values(), now)
    for r in due:
        rec = fetched.get(r["cif"])
        values: dict[str, Any] = {"registry_checked_at": now}
        if rec is not None and rec.found:
            new = {"name": rec.name, "address": rec.address, "trade_register_no": rec.trade_register_no,
                   "vat_payer": rec.vat_payer, "efactura_registered": rec.efactura_registered}
            if any(r[k] != v for k, v in new.items()):
                values.update(new, updated_at=now)
        await repo.update_company(uow.session, r["cif"], values)
        if len(values) > 1:
            _publish_updated(uow, {**r, **values})
    return len(due)


# -- routing table: consumed events -> handlers ------------------------------------------------------------
EVENT_HANDLERS: dict[type[Event], Any] = {
    UserRegistered: on_user_registered,
    EmailVerified: on_email_verified,
    ConnectionAuthorized: on_connection_authorized,
    TokenRefreshed: on_token_refreshed,
    ReauthorizationRequired: on_reauthorization_required,
    ConnectionRevoked: on_connection_revoked,
    InvitationSent: on_invitation_sent,
    InvitationClaimed: on_invitation_claimed,
    InvitationAccepted: on_invitation_accepted,
    InvitationDeclined: on_invitation_declined,
    InvitationExpired: on_invitation_expired,
    InvitationRevoked: on_invitation_revoked,
}
