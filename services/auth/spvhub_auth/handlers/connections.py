"""ANAF connections: the OAuth authorization (start, ANAF's callback, the rights check, storing the connection
with both tokens encrypted), the connections a person may see, and revocation.

Everything about ANAF connections runs on `deps.clock` (it follows the emulator in dev and tests).
"""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt
from spvhub_common.access import MANAGERS, accessible_cifs, require_grant
from spvhub_common.anaf import errors as anaf_errors
from spvhub_common.errors import AppError, Conflict, Forbidden, NotFound
from spvhub_common.events.auth import ConnectionAuthorized, ConnectionRevoked
from spvhub_common.events.envelope import CloudEvent
from spvhub_common.events.portfolio import CompanyRegistered
from spvhub_common.ids import parse_tax_id, strip_ro
from spvhub_common.logging import get_logger
from spvhub_common.pii import is_person_key, parse_company_id
from spvhub_common.security import Principal
from spvhub_common.uow import SqlUnitOfWork

from spvhub_auth import domain
from spvhub_auth.adapters import repository as repo
from spvhub_auth.adapters.anaf import TokenSet
from spvhub_auth.adapters.orm import access_grants
from spvhub_auth.handlers.deps import Deps

log = get_logger(__name__)
STATE_AUDIENCE = "spvhub-auth:anaf-state"


# ---------------------------------------------------------------- who may authorize

async def require_manager(uow: SqlUnitOfWork, user_id: str, cif: str) -> None:
    await require_grant(uow.session, access_grants, user_id, cif, roles=MANAGERS, direct_only=True,
                        allow_unverified=True)


async def require_manager_soon(deps: Deps, user_id: str, cif: str) -> None:
    """The caller must be a direct owner or administrator of `cif`, verified or not (authorizing and delegating is
    how a company's people get verified). The read model gets a moment to catch up: a company registered a second
    ago reaches auth as `portfolio.access-changed` through Kafka, and its owner's first authorization must not fail
    on that. Only a missing row is waited for; a wrong role is final at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deps.settings.access_wait_seconds
    while True:
        async with deps.uow() as uow:
            try:
                await require_manager(uow, user_id, cif)
                return
            except Forbidden as exc:
                if exc.code != "no_access_to_company" or loop.time() >= deadline:
                    raise
        await asyncio.sleep(0.2)


# ---------------------------------------------------------------- natural persons (CNP)

def company_of_request(deps: Deps, raw: object) -> tuple[str, str | None]:
    """The company key of what a person typed in a form (a CIF, a natural person's CNP, or its person key), and
    the clear CNP when one was typed (kept by `remember_cnp` once the caller's access is checked)."""
    text = "".join(str(raw if raw is not None else "").split()).upper()
    if is_person_key(text):
        return text, None
    tax_id = parse_tax_id(raw)
    if tax_id.kind != "cnp":
        return tax_id.value, None
    return deps.pii.key_of(tax_id.value), tax_id.value


async def remember_cnp(deps: Deps, key: str, cnp: str | None) -> None:
    """Keep a typed CNP sealed under its key, so the rights check after ANAF's callback can name the person to
    ANAF; a person key without a known CNP is refused (422 `cnp_required`). The clear CNP is never stored, logged
    or published."""
    if cnp is not None:
        async with deps.uow() as uow:
            await repo.remember_person(uow.session, key, deps.pii.seal(cnp), deps.clock.now())
            await uow.commit()
    elif is_person_key(key) and await anaf_id_of(deps, key) is None:
        raise cnp_required(key)


async def anaf_id_of(deps: Deps, cif: str) -> str | None:
    """What ANAF knows the company by: the CIF, or a person key's CNP (unsealed only for the call); None when the
    CNP of that key was never typed here."""
    if not is_person_key(cif):
        return cif
    async with deps.uow() as uow:
        sealed = await repo.sealed_cnp(uow.session, cif)
    if sealed is None:
        return None
    try:
        return deps.pii.unseal(sealed, cif)
    except ValueError:
        log.warning("sealed CNP does not open for its key", cif=cif)
        return None


async def on_company_registered(ev: CompanyRegistered, _env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    """portfolio registered a natural person by CNP: keep the CNP sealed under its key, so an authorization asked
    for by the key alone (the web's links carry the key) can name the person to ANAF. A sealed value that does not
    open for its key is not kept (and never logged)."""
    if not ev.cnp_sealed or not is_person_key(ev.cif):
        return
    try:
        deps.pii.unseal(ev.cnp_sealed, ev.cif)
    except ValueError:
        log.warning("company-registered carries a sealed CNP that does not open for its key", cif=ev.cif)
        return
    await repo.remember_person(uow.session, ev.cif, ev.cnp_sealed, deps.clock.now())


def cnp_required(cif: str) -> AppError:
    return AppError("ANAF names a natural person by their CNP: type the CNP (13 digits) once to authorize; the "
                    "platform keeps it sealed and shows the person's key instead.", code="cnp_required", status=422,
                    details={"cif": cif},
                    messages={"ro": "ANAF identifică persoana fizică după CNP: introduceți o dată CNP-ul (13 cifre) "
                                    "pentru autorizare; platforma îl păstrează sigilat și afișează cheia persoanei."})


def covered_by_inventory(deps: Deps, cif: str, inventory: frozenset[str] | None) -> bool:
    """Whether ANAF's rights inventory (the `cui` of the list answer) names `cif`: each entry is read as ANAF writes
    it and mapped to the platform's key (a CNP to its person key; the holder's own CNP is listed there too). No
    inventory in the answer (no messages, or an echo) says nothing against the rights."""
    if not inventory:
        return True
    keys = set()
    for entry in inventory:
        key = deps.pii.key_of_anaf_id(strip_ro(entry))
        keys.add(key.lstrip("0") or key if key.isdigit() else key)
    return cif in keys


# ---------------------------------------------------------------- the OAuth authorization

async def new_state(deps: Deps, uow: SqlUnitOfWork, *, user_id: str, cif: str, holder_name: str,
                    delegation_id: str | None) -> tuple[str, datetime]:
    """A signed, single-use `state` bound to the user and the company (and the delegation link it came from)."""
    now = deps.clock.now()
    nonce = uuid.uuid4().hex
    expires_at = now + timedelta(seconds=deps.settings.oauth_state_ttl_seconds)
    await repo.insert_oauth_state(uow.session, nonce=nonce, user_id=user_id, cif=cif, delegation_id=delegation_id,
                                  holder_name=holder_name[:200], now=now, expires_at=expires_at)
    token = deps.ring.sign({"typ": "anaf_state", "nonce": nonce, "sub": user_id, "cif": cif, "dlg": delegation_id,
                            "iss": deps.settings.jwt_issuer, "aud": STATE_AUDIENCE})
    return token, expires_at


async def start_authorization(deps: Deps, principal: Principal, raw_cif: str) -> dict[str, Any]:
    """Return ANAF's authorize URL with a signed, single-use `state` bound to the user and the company (a CIF, or
    a natural person by CNP or person key: the state and the answer carry the key)."""
    cif, cnp = company_of_request(deps, raw_cif)
    await require_manager_soon(deps, principal.user_id, cif)
    await remember_cnp(deps, cif, cnp)
    async with deps.uow() as uow:
        name = principal.name or principal.email or principal.user_id
        state, expires_at = await new_state(deps, uow, user_id=principal.user_id, cif=cif, holder_name=name,
                                            delegation_id=None)
        await uow.commit()
    return {"company_cif": cif, "authorize_url": deps.anaf.authorize_url(state), "state_expires_at": expires_at}


async def _record_outcome(deps: Deps, nonce: str, outcome: str, message: str) -> None:
    async with deps.uow() as uow:
        await repo.set_oauth_outcome(uow.session, nonce, outcome, message=message[:1000])
        await uow.commit()


async def complete_authorization(deps: Deps, *, code: str | None, state: str | None, error: str | None,
                                 error_description: str | None) -> dict[str, Any]:
    """ANAF's redirect back: check the state, exchange the code (ANAF allows 60 s), check SPV rights on the
    company, and store the connection with both tokens encrypted. Nothing is stored on any failure."""
    s = deps.settings
    if not state:
        raise AppError("The ANAF callback has no `state`: start the authorization again from the platform.",
                       code="missing_state", status=400)
    try:
        claims = deps.ring.verify(state, audience=STATE_AUDIENCE, issuer=s.jwt_issuer)
        if claims.get("typ") != "anaf_state":
            raise jwt.InvalidTokenError("not a state")
    except jwt.PyJWTError:
        await deps.ring.load()  # a key rotated by another replica?
        try:
            claims = deps.ring.verify(state, audience=STATE_AUDIENCE, issuer=s.jwt_issuer)
        except jwt.PyJWTError:
            raise AppError("The `state` of this ANAF callback is not valid (altered or not issued by this "
                           "platform). Start the authorization again.", code="invalid_state", status=400) from None
    nonce = str(claims.get("nonce"))
    now = deps.clock.now()
    async with deps.uow() as uow:
        row = await repo.spend_oauth_state(uow.session, nonce, now)
        if row is None:
            if await repo.oauth_state_exists(uow.session, nonce):
                raise Conflict("This authorization was already completed or attempted (each ANAF callback can be "
                               "used once). Start the authorization again.", code="state_already_used")
            raise AppError("The `state` of this ANAF callback is unknown. Start the authorization again.",
                           code="invalid_state", status=400)
        if row.user_id != claims.get("sub") or row.company_cif != claims.get("cif"):
            raise AppError("The `state` of this ANAF callback is not valid. Start the authorization again.",
                           code="invalid_state", status=400)
        await uow.commit()  # the state is spent even if what follows fails (single use)
    if row.expires_at <= now:
        await _record_outcome(deps, nonce, "expired", "state expired")
        raise AppError(f"This authorization was started more than {s.oauth_state_ttl_seconds // 60} minutes ago and "
                       f"has expired. Start it again.", code="state_expired", status=400)
    cif = row.company_cif
    if error:
        code_, message = domain.authorize_error(error)
        await _record_outcome(deps, nonce, "anaf_error", code_)
        raise AppError(message, code=code_, status=400, details={"anaf_error": error[:40], "cif": cif})
    if not code:
        await _record_outcome(deps, nonce, "anaf_error", "missing code")
        raise AppError("ANAF's callback carries no authorization code. Start the authorization again.",
                       code="missing_code", status=400)
    try:
        tokens = await deps.anaf.exchange_code(code)
    except anaf_errors.InvalidGrant:
        await _record_outcome(deps, nonce, "exchange_failed", "invalid_grant")
        raise AppError("ANAF refused the authorization code: it was already used, it expired (ANAF allows 60 "
                       "seconds), or it was issued for another redirect address. Nothing was saved; start the "
                       "authorization again.", code="anaf_code_rejected", status=400, details={"cif": cif}) from None
    except anaf_errors.OAuthError as exc:
        await _record_outcome(deps, nonce, "exchange_failed", exc.error)
        raise AppError("ANAF refused the platform's application credentials; the administrator must check the "
                       "ANAF OAuth client configuration.", code="anaf_client_rejected", status=502,
                       details={"anaf_error": exc.error}) from None
    except anaf_errors.AnafError as exc:
        await _record_outcome(deps, nonce, "exchange_failed", type(exc).__name__)
        raise AppError("ANAF could not be reached to complete the authorization. Start it again in a few minutes.",
                       code="anaf_unavailable", status=503) from None
    facts = domain.TokenFacts.read(tokens.access_token, tokens.refresh_token, now, tokens.expires_in)
    rights_checked = True
    try:
        anaf_id = await anaf_id_of(deps, cif)
        if anaf_id is None:
            raise anaf_errors.NoRights(None, "the natural person's CNP is not known here")
        inventory = await deps.anaf.check_rights(tokens.access_token, anaf_id)
        if not covered_by_inventory(deps, cif, inventory):
            raise anaf_errors.NoRights(None, "the rights inventory does not list the company")
    except anaf_errors.NoRights:
        message = domain.no_rights_message(cif, facts.serial)
        await _record_outcome(deps, nonce, "no_rights", message)
        raise AppError(message, code="no_spv_rights", status=403,
                       details={"cif": cif, "certificate_serial": facts.serial,
                                "likely_causes": ["other_company_certificate", "spv_enrolment_under_24h"]}) from None
    except anaf_errors.AnafError as exc:  # transient or not e-Factura: keep the authorization, say it is pending
        rights_checked = False
        log.warning("rights check after authorization did not complete", cif=cif, error=type(exc).__name__)
    return await _store_connection(deps, row, facts, tokens, now, rights_checked)


async def _store_connection(deps: Deps, st: repo.OAuthState, facts: domain.TokenFacts, tokens: TokenSet,
                            now: datetime, rights_checked: bool) -> dict[str, Any]:
    s = deps.settings
    cif = st.company_cif
    login_at = facts.certificate_login_at or now
    family = domain.family_horizon(login_at, s.family_horizon_days)
    act_by = domain.must_act_by(facts.refresh_expires_at, family)
    renew_at = domain.next_renewal(facts.access_issued_at, facts.access_expires_at, act_by, s.renew_at_fraction)
    holder = st.holder_name or "?"
    async with deps.uow() as uow:
        if st.delegation_id and not await repo.use_delegation(uow.session, st.delegation_id, now, holder):
            raise AppError("This delegation link was already used, revoked or has expired; nothing was saved. "
                           "Ask the company for a new link.", code="delegation_link_unusable", status=410)
        existing = await repo.reusable_connection(uow.session, cif, facts.serial)
        cid = existing.id if existing else str(uuid.uuid4())
        values = dict(
            company_cif=cif, user_id=st.user_id, holder_name=holder, certificate_serial=facts.serial,
            services=facts.services, state=domain.ACTIVE, state_before_renewal=None, delegation_id=st.delegation_id,
            authorized_at=now, access_issued_at=facts.access_issued_at, access_expires_at=facts.access_expires_at,
            refresh_expires_at=facts.refresh_expires_at, family_expires_at=family, must_act_by=act_by,
            next_renewal_at=renew_at, last_refreshed_at=None,
            access_token_enc=deps.box.encrypt(tokens.access_token, aad=f"anaf:{cid}:access"),
            refresh_token_enc=deps.box.encrypt(tokens.refresh_token, aad=f"anaf:{cid}:refresh"),
            lease_until=None, renew_attempts=0, next_attempt_at=None, last_error=None, warnings_sent=[],
            reauth_reason=None, reauth_message=None, revoked_at=None, updated_at=now)
        if existing:
            await repo.update_connection(uow.session, cid, **values)
        else:
            await repo.insert_connection(uow.session, cid, now, **values)
        if st.delegation_id:
            await repo.link_delegation_connection(uow.session, st.delegation_id, cid)
        await repo.set_oauth_outcome(uow.session, st.id, "authorized", connection_id=cid, with_message=False)
        uow.publish(ConnectionAuthorized(
            connection_id=cid, company_cif=cif, user_id=st.user_id, holder_name=holder,
            certificate_serial=facts.serial, services=facts.services, authorized_at=now,
            access_expires_at=facts.access_expires_at, refresh_expires_at=facts.refresh_expires_at,
            must_act_by=act_by, via_delegation=bool(st.delegation_id), next_renewal_at=renew_at,
            rights_confirmed=rights_checked))
        conn = await repo.get_connection(uow.session, cid)
        assert conn is not None
        await uow.commit()
    log.info("anaf connection authorized", connection_id=cid, cif=cif, serial=facts.serial)
    view = connection_view(conn, now)
    view["rights_checked"] = rights_checked
    view["message"] = (f"ANAF access for company CIF {cif} is active, authorized by {holder}."
                       if rights_checked else
                       f"ANAF access for company CIF {cif} is saved, authorized by {holder}; ANAF could not confirm "
                       f"the SPV rights right now, the platform will check again.")
    return view


def connection_view(c: repo.Connection, now: datetime | None = None) -> dict[str, Any]:
    v: dict[str, Any] = {
        "id": c.id, "company_cif": c.company_cif, "state": c.state, "authorizing_person": c.holder_name,
        "authorized_by_user_id": c.user_id, "certificate_serial": c.certificate_serial, "services": c.services,
        "authorized_at": c.authorized_at, "access_expires_at": c.access_expires_at,
        "refresh_expires_at": c.refresh_expires_at, "family_expires_at": c.family_expires_at,
        "must_act_by": c.must_act_by, "next_renewal_at": c.next_renewal_at, "last_refreshed_at": c.last_refreshed_at,
        "via_delegation": c.delegation_id is not None, "warnings_sent_days": list(c.warnings_sent or []),
        "reauthorization_reason": c.reauth_reason, "reauthorization_message": c.reauth_message,
        "revoked_at": c.revoked_at, "last_error": c.last_error,
    }
    if now is not None and c.state not in (domain.REAUTH, domain.REVOKED):
        v["days_until_must_act"] = domain.days_left(c.must_act_by, now)
    return v


# ---------------------------------------------------------------- connections (user view), revocation

async def _visible_connection(uow: SqlUnitOfWork, principal: Principal, connection_id: str) -> repo.Connection:
    """The connection, when the caller holds a verified grant on its company. No grant at all answers 404 (the id
    says nothing to a stranger); an unverified member gets 403 `company_not_verified`. Having authorized the
    connection gives no access by itself: a person who left the company no longer sees it."""
    c = await repo.get_connection(uow.session, connection_id)
    if c is None:
        raise NotFound("No such ANAF connection.", code="no_connection")
    try:
        await require_grant(uow.session, access_grants, principal.user_id, c.company_cif)
    except Forbidden as exc:
        if exc.code == "no_access_to_company":
            raise NotFound("No such ANAF connection.", code="no_connection") from None
        raise
    return c


async def list_connections(deps: Deps, principal: Principal, raw_cif: str | None = None) -> list[dict[str, Any]]:
    """The connections of the companies the caller is verified for (of one company: 403 without a verified grant)."""
    async with deps.uow() as uow:
        if raw_cif:
            cifs = [parse_company_id(raw_cif)]
            await require_grant(uow.session, access_grants, principal.user_id, cifs[0])
        else:
            cifs = await accessible_cifs(uow.session, access_grants, principal.user_id)
        rows = await repo.connections_of(uow.session, cifs)
    now = deps.clock.now()
    return [connection_view(r, now) for r in rows]


async def get_connection(deps: Deps, principal: Principal, connection_id: str) -> dict[str, Any]:
    async with deps.uow() as uow:
        c = await _visible_connection(uow, principal, connection_id)
    return connection_view(c, deps.clock.now())


async def revoke_connection(deps: Deps, principal: Principal, connection_id: str) -> dict[str, Any]:
    """Stop using a connection: tokens are erased, `auth.connection-revoked` is published."""
    now = deps.clock.now()
    async with deps.uow() as uow:
        c = await _visible_connection(uow, principal, connection_id)
        # Only the company's own verified owners and administrators: not a plain member, not a firm's accountant,
        # and not the person who authorized it unless they still are one.
        await require_grant(uow.session, access_grants, principal.user_id, c.company_cif, roles=MANAGERS,
                            direct_only=True)
        if c.state == domain.REVOKED:
            return connection_view(c, now)
        await repo.update_connection(uow.session, c.id, state=domain.REVOKED, revoked_at=now, access_token_enc=None,
                                     refresh_token_enc=None, lease_until=None, updated_at=now)
        uow.publish(ConnectionRevoked(connection_id=c.id, company_cif=c.company_cif, user_id=principal.user_id,
                                      reason="revoked_by_user"))
        fresh = await repo.get_connection(uow.session, c.id)
        assert fresh is not None
        await uow.commit()
    return connection_view(fresh, now)
