"""Keeping ANAF connections alive: renewal of the token pair before the access token runs out (exactly one runner
per connection, by a row claim with a lease), warnings before the date a person must act, re-authorization when
ANAF refuses for good, and the deadline gauge SRE alerts on."""
from __future__ import annotations

from datetime import datetime, timedelta

from prometheus_client import Gauge
from spvhub_common.anaf import errors as anaf_errors
from spvhub_common.events.auth import ReauthorizationRequired, TokenExpiring, TokenRefreshed
from spvhub_common.logging import get_logger

from spvhub_auth import domain
from spvhub_auth.adapters import repository as repo
from spvhub_auth.handlers.deps import Deps

log = get_logger(__name__)

MUST_ACT_DAYS = Gauge("auth_connection_must_act_days",
                      "Days until the connection's holder must authorize again (0 when overdue)",
                      ["connection", "cif"])


async def renew_connection(deps: Deps, connection_id: str, *, force: bool = False) -> str:
    """Renew one connection if this caller wins the row claim. Returns `renewed`, `not_claimed`,
    `reauthorization_required` or `retry_later`. Exactly one runner refreshes: the claim is one conditional
    UPDATE; both rotated tokens are stored in the transaction that records success."""
    s = deps.settings
    now = deps.clock.now()
    lease = now + timedelta(seconds=s.renewal_lease_seconds)
    async with deps.uow() as uow:
        claimed = await repo.claim_for_renewal(uow.session, connection_id, now, lease, force=force)
        await uow.commit()
    if claimed is None:
        return "not_claimed"
    refresh_enc = claimed.refresh_token_enc
    if refresh_enc is None:
        return await _require_reauth(deps, claimed, domain.UNKNOWN, lease)
    refresh_token = deps.box.decrypt(bytes(refresh_enc), aad=f"anaf:{claimed.id}:refresh")
    try:
        tokens = await deps.anaf.refresh(refresh_token)
    except anaf_errors.InvalidGrant as exc:
        reason = domain.reauth_reason(exc.description or exc.text, now, claimed.must_act_by,
                                      claimed.family_expires_at)
        return await _require_reauth(deps, claimed, reason, lease)
    except anaf_errors.AnafError as exc:
        return await _retry_later(deps, claimed, lease, f"{type(exc).__name__}: {exc.text[:200]}")
    except Exception as exc:  # network stack surprises: retried, never a reason to drop the authorization
        return await _retry_later(deps, claimed, lease, type(exc).__name__)
    facts = domain.TokenFacts.read(tokens.access_token, tokens.refresh_token, now, tokens.expires_in)
    family = claimed.family_expires_at
    if facts.certificate_login_at is not None:
        family = domain.family_horizon(facts.certificate_login_at, s.family_horizon_days)
    if family is not None and now >= family:
        family = None  # ANAF still renews past the assumed horizon: the horizon is not what we thought
    act_by = domain.must_act_by(facts.refresh_expires_at, family)
    renew_at = domain.next_renewal(facts.access_issued_at, facts.access_expires_at, act_by, s.renew_at_fraction)
    sent_before = list(claimed.warnings_sent or [])
    still_due = [o for o in sent_before if now >= act_by - timedelta(days=o)]
    prior = claimed.state_before_renewal or domain.ACTIVE
    new_state = domain.EXPIRING if still_due else domain.ACTIVE
    async with deps.uow() as uow:
        done = await repo.update_leased(
            uow.session, claimed.id, lease, state=new_state, state_before_renewal=None, lease_until=None,
            access_token_enc=deps.box.encrypt(tokens.access_token, aad=f"anaf:{claimed.id}:access"),
            refresh_token_enc=deps.box.encrypt(tokens.refresh_token, aad=f"anaf:{claimed.id}:refresh"),
            access_issued_at=facts.access_issued_at, access_expires_at=facts.access_expires_at,
            refresh_expires_at=facts.refresh_expires_at, family_expires_at=family, must_act_by=act_by,
            next_renewal_at=renew_at, last_refreshed_at=now, renew_attempts=0, next_attempt_at=None,
            last_error=None, warnings_sent=still_due, updated_at=now)
        if not done:
            # Our lease ran out and another runner took over; it holds the row now.
            log.error("renewal lost its lease after refreshing", connection_id=claimed.id)
            return "lease_lost"
        uow.publish(TokenRefreshed(connection_id=claimed.id, company_cif=claimed.company_cif,
                                   access_expires_at=facts.access_expires_at,
                                   refresh_expires_at=facts.refresh_expires_at,
                                   after_warning=bool(sent_before) or prior == domain.EXPIRING,
                                   must_act_by=act_by, next_renewal_at=renew_at))
        await uow.commit()
    log.info("anaf tokens renewed", connection_id=claimed.id, cif=claimed.company_cif,
             access_expires_at=facts.access_expires_at.isoformat())
    return "renewed"


async def _retry_later(deps: Deps, claimed: repo.Connection, lease: datetime, error: str) -> str:
    s = deps.settings
    now = deps.clock.now()
    attempts = claimed.renew_attempts + 1
    wait = domain.backoff_seconds(attempts, s.renewal_backoff_base_seconds, s.renewal_backoff_max_seconds)
    async with deps.uow() as uow:
        await repo.update_leased(
            uow.session, claimed.id, lease, state=claimed.state_before_renewal or domain.ACTIVE,
            state_before_renewal=None, lease_until=None, renew_attempts=attempts,
            next_attempt_at=now + timedelta(seconds=wait), last_error=error[:300], updated_at=now)
        await uow.commit()
    log.warning("anaf renewal failed, will retry", connection_id=claimed.id, attempt=attempts, retry_in_s=wait,
                error=error[:200])
    return "retry_later"


async def _require_reauth(deps: Deps, claimed: repo.Connection, reason: str, lease: datetime | None) -> str:
    now = deps.clock.now()
    async with deps.uow() as uow:
        locale = await repo.locale_of(uow.session, claimed.user_id)
        message = domain.reauth_message(reason, claimed.company_cif, claimed.certificate_serial, locale)
        done = await repo.update_leased(
            uow.session, claimed.id, lease, state=domain.REAUTH, state_before_renewal=None, lease_until=None,
            access_token_enc=None, refresh_token_enc=None, reauth_reason=reason, reauth_message=message,
            updated_at=now)
        if not done:
            return "lease_lost"
        uow.publish(ReauthorizationRequired(connection_id=claimed.id, company_cif=claimed.company_cif,
                                            user_id=claimed.user_id, reason=reason, message=message,
                                            certificate_serial=claimed.certificate_serial))
        await uow.commit()
    log.warning("anaf re-authorization required", connection_id=claimed.id, cif=claimed.company_cif, reason=reason)
    return "reauthorization_required"


async def renew_due(deps: Deps) -> dict[str, int]:
    """The renewal job: every connection whose renewal time came (or whose renewing lease ran out)."""
    now = deps.clock.now()
    async with deps.uow() as uow:
        ids = await repo.due_for_renewal(uow.session, now)
    outcomes: dict[str, int] = {}
    for cid in ids:
        try:
            out = await renew_connection(deps, cid)
        except Exception as exc:  # one bad row must not stop the others
            log.exception("renewal crashed", connection_id=cid, error=type(exc).__name__)
            out = "error"
        outcomes[out] = outcomes.get(out, 0) + 1
    return outcomes


async def send_warnings(deps: Deps) -> int:
    """`auth.token-expiring` at each configured offset before the date a person must act, each exactly once."""
    s = deps.settings
    offsets = sorted(set(s.warning_offsets_days), reverse=True)
    if not offsets:
        return 0
    now = deps.clock.now()
    async with deps.uow() as uow:
        rows = await repo.warning_candidates(uow.session, now, now + timedelta(days=offsets[0]))
    sent = 0
    for r in rows:
        due = domain.warning_due(r.must_act_by, now, offsets, list(r.warnings_sent or []))
        if due is None:
            continue
        offset, settled = due
        new_list = sorted(set(list(r.warnings_sent or []) + settled), reverse=True)
        async with deps.uow() as uow:
            if not await repo.record_warning(uow.session, r.id, list(r.warnings_sent or []), new_list, now):
                continue  # another replica sent it
            locale = await repo.locale_of(uow.session, r.user_id)
            left = domain.days_left(r.must_act_by, now)
            horizon = r.family_expires_at is not None and r.family_expires_at <= r.refresh_expires_at
            uow.publish(TokenExpiring(connection_id=r.id, company_cif=r.company_cif, user_id=r.user_id,
                                      must_act_by=r.must_act_by, days_left=left, offset_days=offset,
                                      reason="horizon" if horizon else "refresh_expiry",
                                      message=domain.expiring_message(r.company_cif, r.must_act_by, left, locale)))
            await uow.commit()
            sent += 1
    return sent


async def export_deadline_metrics(deps: Deps) -> dict[str, float]:
    """Set `auth_connection_must_act_days` for every live connection; revoked ones lose their series."""
    now = deps.clock.now()
    async with deps.uow() as uow:
        rows = await repo.deadlines(uow.session)
    values: dict[str, float] = {}
    for r in rows:
        if r.state == domain.REVOKED or r.must_act_by is None:
            try:
                MUST_ACT_DAYS.remove(r.id, r.company_cif)
            except KeyError:
                pass
            continue
        days = max((r.must_act_by - now).total_seconds() / 86400, 0.0)
        MUST_ACT_DAYS.labels(r.id, r.company_cif).set(round(days, 3))
        values[r.id] = days
    return values


async def run_lifecycle(deps: Deps) -> None:
    """One pass of the periodic job: warnings first (they concern the date a person must act), then renewals,
    then the deadline gauge SRE alerts on."""
    await send_warnings(deps)
    await renew_due(deps)
    await export_deadline_metrics(deps)
