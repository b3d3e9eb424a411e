"""Use cases of the notifier: consumed events -> notices -> inbox items and e-mail outbox rows (idempotent per
event, channel and recipient); the invoice digest job; the e-mail sender job; the inbox and preferences
commands. The routing table of consumed events is at the bottom."""
from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

from spvhub_common.access import MANAGERS, accessible_cifs, require_access, verified_users
from spvhub_common.clock import Clock
from spvhub_common.errors import AppError, NotFound
from spvhub_common.events import CloudEvent, Event
from spvhub_common.events.auth import (
    AccountEmailRequested,
    EmailVerified,
    ReauthorizationRequired,
    TokenExpiring,
    TokenRefreshed,
    UserRegistered,
)
from spvhub_common.events.efactura import (
    FiledLate,
    FilingDeadlineApproaching,
    InvoiceDownloaded,
    InvoiceErrorReceived,
    InvoiceRejected,
    MessageExpiring,
)
from spvhub_common.events.etransport import TransportAssigned, UitExpiring
from spvhub_common.events.invitations import (
    InvitationAccepted,
    InvitationClaimed,
    InvitationDeclined,
    InvitationExpired,
    InvitationRevoked,
    InvitationSent,
)
from spvhub_common.events.notifier import NotificationSent
from spvhub_common.events.portfolio import (
    AccessLost,
    CollaborationEnded,
    CollaborationStarted,
    CompanyRegistered,
    CompanyUpdated,
    JoinRequested,
    MembershipVerified,
)
from spvhub_common.events.webhooks import EndpointDisabled
from spvhub_common.logging import get_logger
from spvhub_common.security import Principal
from spvhub_common.uow import SqlUnitOfWork
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from spvhub_notifier import domain
from spvhub_notifier.adapters.account_links import AccountLinks
from spvhub_notifier.adapters.invitations_client import InvitationLinks, LinkGone, LinkUnavailable
from spvhub_notifier.adapters.orm import (
    access_grants,
    companies,
    company_preferences,
    delivery_log,
    digest_items,
    email_outbox,
    email_preferences,
    notifications,
    user_settings,
    users,
)
from spvhub_notifier.adapters.smtp import EmailSender, PermanentFailure, TemporaryFailure
from spvhub_notifier.adapters.templates import Renderer
from spvhub_notifier.domain import KINDS, Notice

log = get_logger(__name__)


@dataclass
class Deps:
    uow: Callable[[], SqlUnitOfWork]
    clock: Clock
    renderer: Renderer
    sender: EmailSender
    links: InvitationLinks
    links_base: str
    mail_from: str
    retry_base: float = 2.0
    retry_max: float = 60.0
    max_attempts: int = 500
    lease: float = 120.0
    batch: int = 50
    unknown_recipient_attempts: int = 30
    ui_paths: dict[str, str] | None = None  # per kind, a path replacing domain.KINDS' default
    account_links: AccountLinks | None = None  # auth's links of account e-mails


# ---------------------------------------------------------------- delivery (inbox + e-mail outbox)

async def _users_for_cif(session: AsyncSession, cif: str, *, direct_only: bool = False,
                         roles: tuple[str, ...] | None = None) -> list[str]:
    """Who hears about a company's ANAF data: its verified people only (a registration by CIF alone proves
    nothing, so an unverified member is told nothing that came from ANAF)."""
    return await verified_users(session, access_grants, cif, direct_only=direct_only, roles=roles)


async def _company_name(session: AsyncSession, cif: str | None) -> str | None:
    if not cif:
        return None
    return (await session.execute(select(companies.c.name).where(companies.c.cif == cif))).scalar()


async def _email_enabled(session: AsyncSession, user_id: str, kind: str) -> bool:
    pref = (await session.execute(select(email_preferences.c.email).where(
        email_preferences.c.user_id == user_id, email_preferences.c.kind == kind))).scalar()
    return KINDS[kind].email_default if pref is None else bool(pref)


async def deliver(uow: SqlUnitOfWork, notice: Notice, source_event_id: str) -> None:
    """Write the inbox items and e-mail outbox rows of a notice in the consumer's transaction. The unique
    constraints make a second delivery of the same event to the same recipient on the same channel a no-op."""
    spec = KINDS[notice.kind]
    session = uow.session
    seen: set[str] = set()
    for user_id in notice.users:
        if not user_id or user_id in seen:
            continue
        seen.add(user_id)
        nid: str | None = None
        if spec.inbox:
            candidate = str(uuid.uuid4())
            nid = (await session.execute(insert(notifications).values(
                id=candidate, user_id=user_id, kind=notice.kind, source_event_id=source_event_id, cif=notice.cif,
                params=notice.params, actionable=notice.kind == "invitation_received",
            ).on_conflict_do_nothing(constraint="uq_notifications_event_user").returning(notifications.c.id))).scalar()
            if nid is not None:
                uow.publish(NotificationSent(notification_id=nid, user_id=user_id, kind=notice.kind,
                                             channel="inbox", cif=notice.cif, source_event_id=source_event_id))
        if await _email_enabled(session, user_id, notice.kind):
            await session.execute(insert(email_outbox).values(
                id=str(uuid.uuid4()), source_event_id=source_event_id, recipient=f"user:{user_id}",
                user_id=user_id, kind=notice.kind, cif=notice.cif, params=notice.params, notification_id=nid,
            ).on_conflict_do_nothing(constraint="uq_email_outbox_event_recipient"))
    if notice.email_to:
        addr = notice.email_to.strip()
        await session.execute(insert(email_outbox).values(
            id=str(uuid.uuid4()), source_event_id=source_event_id, recipient=f"email:{addr.lower()}",
            to_address=addr, locale=notice.email_locale, kind=notice.kind, cif=notice.cif, params=notice.params,
        ).on_conflict_do_nothing(constraint="uq_email_outbox_event_recipient"))


# ---------------------------------------------------------------- consumed events

async def on_user_registered(ev: UserRegistered, _env: CloudEvent, uow: SqlUnitOfWork) -> None:
    stmt = insert(users).values(user_id=ev.user_id, email=ev.email, name=ev.name,
                                locale=domain.normalize_locale(ev.locale))
    await uow.session.execute(stmt.on_conflict_do_update(index_elements=["user_id"], set_={
        "email": stmt.excluded.email, "name": stmt.excluded.name, "locale": stmt.excluded.locale,
        "updated_at": func.now()}))


async def on_email_verified(ev: EmailVerified, _env: CloudEvent, uow: SqlUnitOfWork) -> None:
    """A confirmed change of address: e-mails go to the new one from now on."""
    await uow.session.execute(update(users).where(users.c.user_id == ev.user_id).values(
        email=ev.email, updated_at=func.now()))


async def on_account_email(ev: AccountEmailRequested, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    """The account's own e-mails go to the address named (for a change, the new or the old one), in the
    account's language; a link is fetched from auth when the e-mail is sent."""
    if ev.kind not in domain.ACCOUNT_KINDS:
        log.warning("unknown account e-mail kind ignored", kind=ev.kind)
        return
    params = {"request_id": ev.request_id, "name": ev.name, "email": ev.email, "new_email": ev.new_email}
    await deliver(uow, Notice(ev.kind, params, email_to=ev.email, email_locale=domain.normalize_locale(ev.locale)),
                  env.id)


async def on_company(ev: CompanyRegistered | CompanyUpdated, _env: CloudEvent, uow: SqlUnitOfWork) -> None:
    stmt = insert(companies).values(cif=ev.cif, name=ev.name)
    await uow.session.execute(stmt.on_conflict_do_update(index_elements=["cif"], set_={
        "name": stmt.excluded.name, "updated_at": func.now()}))


def _inv_params(ev: Any) -> dict[str, Any]:
    return {"invitation_id": ev.invitation_id, "firm_cif": ev.firm_cif, "client_cif": ev.client_cif,
            "firm_name": ev.firm_name, "client_name": ev.client_name}


async def _with_names(session: AsyncSession, params: dict[str, Any]) -> dict[str, Any]:
    params["firm_name"] = params.get("firm_name") or await _company_name(session, params["firm_cif"])
    params["client_name"] = params.get("client_name") or await _company_name(session, params["client_cif"])
    return params


async def on_invitation_sent(ev: InvitationSent, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    """E-mail to the client's representative (no account yet); the link is fetched when the e-mail is sent."""
    params = await _with_names(uow.session, {**_inv_params(ev), "name": ev.name,
                                             "expires_at": ev.expires_at.isoformat(), "resent": ev.resent})
    await deliver(uow, Notice("invitation", params, cif=ev.client_cif, email_to=ev.email,
                              email_locale=ev.locale), env.id)


async def on_invitation_claimed(ev: InvitationClaimed, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    """The claimer, and the client's verified owners and administrators: only they may answer, so they must know
    (a claim on a company that already has a verified owner does not let the claimer answer)."""
    params = await _with_names(uow.session, _inv_params(ev))
    managers = await _users_for_cif(uow.session, ev.client_cif, direct_only=True, roles=MANAGERS)
    await deliver(uow, Notice("invitation_received", params, cif=ev.client_cif, users=[ev.user_id, *managers]),
                  env.id)


async def _settle_action(session: AsyncSession, invitation_id: str, state: str) -> None:
    await session.execute(update(notifications).where(
        notifications.c.kind == "invitation_received", notifications.c.actionable.is_(True),
        notifications.c.params["invitation_id"].astext == invitation_id, notifications.c.action_state.is_(None),
    ).values(action_state=state, read_at=func.coalesce(notifications.c.read_at, func.now())))


async def _to_firm(kind: str, ev: Any, env: CloudEvent, uow: SqlUnitOfWork, **extra: Any) -> None:
    params = await _with_names(uow.session, {**_inv_params(ev), **extra})
    await deliver(uow, Notice(kind, params, cif=ev.firm_cif,
                              users=await _users_for_cif(uow.session, ev.firm_cif, direct_only=True)), env.id)


async def on_invitation_accepted(ev: InvitationAccepted, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    await _settle_action(uow.session, ev.invitation_id, "accepted")
    await _to_firm("invitation_accepted", ev, env, uow)


async def on_invitation_declined(ev: InvitationDeclined, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    await _settle_action(uow.session, ev.invitation_id, "declined")
    await _to_firm("invitation_declined", ev, env, uow)


async def on_invitation_expired(ev: InvitationExpired, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    await _to_firm("invitation_expired", ev, env, uow,
                   expired_at=ev.expired_at.isoformat() if ev.expired_at else None)


async def on_invitation_revoked(ev: InvitationRevoked, _env: CloudEvent, uow: SqlUnitOfWork) -> None:
    await _settle_action(uow.session, ev.invitation_id, "revoked")


async def _to_company(kind: str, cif: str, env: CloudEvent, uow: SqlUnitOfWork, params: dict[str, Any],
                      recipients: list[str] | None = None) -> None:
    """A company-scoped notice: to its verified users unless the caller names the recipients."""
    if recipients is None:
        recipients = await _users_for_cif(uow.session, cif)
    params = {"cif": cif, "company_name": await _company_name(uow.session, cif), **params}
    await deliver(uow, Notice(kind, params, cif=cif, users=recipients), env.id)


async def _holder_people(session: AsyncSession, cif: str) -> list[str]:
    """About a connection: the holder company's own verified people. Not the firms' accountants reaching it as a
    client, not the person who authorized it once (unless still one of them), not other tenants whose companies
    the certificate also covers: whether their sync stops is told by `portfolio.access-lost`."""
    return await _users_for_cif(session, cif, direct_only=True)


async def on_token_expiring(ev: TokenExpiring, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    await _to_company("token_expiring", ev.company_cif, env, uow, {
        "connection_id": ev.connection_id, "days_left": ev.days_left, "must_act_by": ev.must_act_by.isoformat()},
        recipients=await _holder_people(uow.session, ev.company_cif))


async def on_reauthorization_required(ev: ReauthorizationRequired, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    await _to_company("reauthorization_required", ev.company_cif, env, uow, {
        "connection_id": ev.connection_id, "reason": ev.reason, "message": ev.message},
        recipients=await _holder_people(uow.session, ev.company_cif))


async def on_token_refreshed(ev: TokenRefreshed, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    if not ev.after_warning:  # routine refreshes are silent
        return
    await _to_company("authorization_renewed", ev.company_cif, env, uow, {
        "connection_id": ev.connection_id, "refresh_expires_at": ev.refresh_expires_at.isoformat()},
        recipients=await _holder_people(uow.session, ev.company_cif))


async def on_invoice_downloaded(ev: InvoiceDownloaded, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    """Not told one by one: queued for the company's next digest."""
    data = ev.model_dump(mode="json", include={"message_id", "direction", "document_type", "number", "issue_date",
                                               "partner_cif", "partner_name", "currency", "total_amount"})
    await uow.session.execute(insert(digest_items).values(source_event_id=env.id, cif=ev.cif, params=data)
                              .on_conflict_do_nothing())


async def on_invoice_error(ev: InvoiceErrorReceived, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    """An upload made outside spvhub was rejected: tell the company. A submission made through spvhub is told once,
    by its `invoice_rejected` notice (to the sender, each error explained)."""
    if ev.submission_id:
        return
    await _to_company("invoice_error", ev.cif, env, uow, {
        "message_id": ev.message_id, "upload_index": ev.upload_index, "errors": list(ev.errors)[:20]})


async def on_invoice_rejected(ev: InvoiceRejected, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    """A submission was rejected: tell the person who submitted it (while they can still see the company), with
    each error explained; without a known sender, everyone with access to the company."""
    users = await _users_for_cif(uow.session, ev.cif)
    recipients = [ev.submitted_by] if ev.submitted_by in users else users
    params = {"cif": ev.cif, "company_name": await _company_name(uow.session, ev.cif),
              "submission_id": ev.submission_id, "number": ev.number, "stage": ev.stage,
              "upload_index": ev.upload_index, "errors": [dict(e) for e in ev.errors[:20]]}
    await deliver(uow, Notice("invoice_rejected", params, cif=ev.cif, users=recipients), env.id)


async def on_filing_deadline_approaching(ev: FilingDeadlineApproaching, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    """An invoice still to be filed is close to its legal deadline: everyone who works on the company's invoices
    (its people and its collaborating firm's), found as for a rejected submission."""
    await _to_company("filing_deadline_approaching", ev.cif, env, uow, {
        "submission_id": ev.submission_id, "number": ev.number, "issue_date": ev.issue_date.isoformat(),
        "deadline": ev.deadline.isoformat(), "working_hours_left": ev.working_hours_left, "state": ev.state})


async def on_filed_late(ev: FiledLate, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    """An invoice was filed after its legal deadline: the company and its collaborating firm, once."""
    await _to_company("filed_late", ev.cif, env, uow, {
        "submission_id": ev.submission_id, "number": ev.number, "issue_date": ev.issue_date.isoformat(),
        "deadline": ev.deadline.isoformat(), "filed_at": ev.filed_at.isoformat(), "upload_index": ev.upload_index,
        "working_days_late": ev.working_days_late})


async def on_message_expiring(ev: MessageExpiring, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    await _to_company("message_expiring", ev.cif, env, uow, {
        "message_id": ev.message_id, "purge_at": ev.purge_at.isoformat()})


async def on_transport_assigned(ev: TransportAssigned, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    await _to_company("transport_assigned", ev.carrier_cif, env, uow, ev.model_dump(
        mode="json", include={"uit", "declarant_cif", "vehicle", "transport_date", "uit_expires_at",
                              "route_start", "route_end"}))


async def on_uit_expiring(ev: UitExpiring, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    await _to_company("uit_expiring", ev.carrier_cif, env, uow, {
        "uit": ev.uit, "uit_expires_at": ev.uit_expires_at.isoformat()})


async def on_access_lost(ev: AccessLost, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    """Sent by portfolio only when the company's sync actually stops; it names exactly who must be told."""
    await _to_company("access_lost", ev.cif, env, uow, {"connection_id": ev.connection_id, "reason": ev.reason},
                      recipients=list(ev.notify_user_ids))


async def on_webhook_disabled(ev: EndpointDisabled, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    """The webhooks service names exactly who is told: the tenant company's verified owners and administrators."""
    await _to_company("webhook_disabled", ev.tenant_cif, env, uow, {
        "endpoint_id": ev.endpoint_id, "endpoint_url": ev.url, "failing_since": ev.failing_since.isoformat(),
        "last_error": ev.last_error[:300]}, recipients=list(ev.notify_user_ids))


async def _collaboration(kind: str, ev: CollaborationStarted | CollaborationEnded, env: CloudEvent,
                         uow: SqlUnitOfWork, **extra: Any) -> None:
    """A collaboration changes only with the client's consent, and both sides' owners and administrators hear
    of every start and end."""
    s = uow.session
    recipients = [*await _users_for_cif(s, ev.firm_cif, direct_only=True, roles=MANAGERS),
                  *await _users_for_cif(s, ev.client_cif, direct_only=True, roles=MANAGERS)]
    params = {"firm_cif": ev.firm_cif, "client_cif": ev.client_cif, "firm_name": await _company_name(s, ev.firm_cif),
              "client_name": await _company_name(s, ev.client_cif), **extra}
    await deliver(uow, Notice(kind, params, cif=ev.client_cif, users=recipients), env.id)


async def on_collaboration_started(ev: CollaborationStarted, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    await _collaboration("collaboration_started", ev, env, uow, may_file=ev.may_file)


async def on_collaboration_ended(ev: CollaborationEnded, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    if ev.reason.startswith("invitation_"):
        # a pending collaboration closed with its invitation (declined, expired, withdrawn): it never started, and
        # the invitation's own notices tell who needs to know
        return
    await _collaboration("collaboration_ended", ev, env, uow, reason=ev.reason)


async def on_join_requested(ev: JoinRequested, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    """Someone asked to join a company that already has a verified owner: portfolio names who decides."""
    s = uow.session
    who = (await s.execute(select(users.c.name, users.c.email).where(users.c.user_id == ev.user_id))).first()
    await _to_company("join_requested", ev.cif, env, uow, {
        "user_id": ev.user_id, "requester_name": who.name if who else None,
        "requester_email": who.email if who else None, "via": ev.via, "invitation_id": ev.invitation_id,
        "firm_cif": ev.firm_cif, "firm_name": await _company_name(s, ev.firm_cif)},
        recipients=list(ev.notify_user_ids))


async def on_membership_verified(ev: MembershipVerified, env: CloudEvent, uow: SqlUnitOfWork) -> None:
    await _to_company("company_verified", ev.cif, env, uow, {"role": ev.role, "via": ev.via},
                      recipients=[ev.user_id])


# ---------------------------------------------------------------- jobs: digest and e-mail sender

DIGEST_ITEMS_SHOWN = 10


async def run_digests(deps: Deps) -> int:
    """One digest per company for everything downloaded since the last one (inbox + e-mail per user)."""
    async with deps.uow() as uow:
        rows = (await uow.session.execute(
            select(digest_items).where(digest_items.c.digest_id.is_(None))
            .order_by(digest_items.c.cif, digest_items.c.received_at).with_for_update(skip_locked=True))).mappings()
        by_cif: dict[str, list[Any]] = defaultdict(list)
        for r in rows:
            by_cif[r["cif"]].append(r)
        for cif, items in by_cif.items():
            digest_id = str(uuid.uuid4())
            await uow.session.execute(update(digest_items).where(
                digest_items.c.source_event_id.in_([i["source_event_id"] for i in items])).values(digest_id=digest_id))
            opted_out = {r[0] for r in await uow.session.execute(select(company_preferences.c.user_id).where(
                company_preferences.c.cif == cif, company_preferences.c.invoice_digest.is_(False)))}
            recipients = [u for u in await _users_for_cif(uow.session, cif) if u not in opted_out]
            received = sum(1 for i in items if i["params"].get("direction") == "received")
            params = {"cif": cif, "company_name": await _company_name(uow.session, cif), "count": len(items),
                      "received": received, "sent": len(items) - received, "digest_id": digest_id,
                      "items": [i["params"] for i in items[:DIGEST_ITEMS_SHOWN]],
                      "more": max(0, len(items) - DIGEST_ITEMS_SHOWN)}
            await deliver(uow, Notice("invoice_digest", params, cif=cif, users=recipients), f"digest:{digest_id}")
        await uow.commit()
        return len(by_cif)


async def send_due_emails(deps: Deps) -> int:
    """Send what is due: reserve a batch (lease), send each outside any transaction, record each attempt."""
    async with deps.uow() as uow:
        due = or_(and_(email_outbox.c.status == "pending", email_outbox.c.next_attempt_at <= func.now()),
                  and_(email_outbox.c.status == "sending", email_outbox.c.lease_until < func.now()))
        ids = [r[0] for r in await uow.session.execute(
            select(email_outbox.c.id).where(due).order_by(email_outbox.c.next_attempt_at, email_outbox.c.created_at)
            .limit(deps.batch).with_for_update(skip_locked=True))]
        if not ids:
            return 0
        rows = list((await uow.session.execute(
            update(email_outbox).where(email_outbox.c.id.in_(ids)).values(
                status="sending", attempts=email_outbox.c.attempts + 1,
                lease_until=func.now() + timedelta(seconds=deps.lease))
            .returning(*email_outbox.c))).mappings())
        await uow.commit()
    rows.sort(key=lambda r: r["created_at"])
    for row in rows:
        await _send_one(deps, dict(row))
    return len(rows)


async def _recipient(deps: Deps, row: dict[str, Any]) -> tuple[str | None, str, str | None]:
    """(address, locale, name) at send time: a user's address and language are read from the read model."""
    if row["to_address"]:
        return row["to_address"], domain.normalize_locale(row["locale"]), None
    async with deps.uow() as uow:
        u = (await uow.session.execute(select(users).where(users.c.user_id == row["user_id"]))).mappings().first()
        pref = (await uow.session.execute(select(user_settings.c.locale).where(
            user_settings.c.user_id == row["user_id"]))).scalar()
    if u is None:
        return None, domain.normalize_locale(pref), None
    return u["email"], domain.normalize_locale(pref or u["locale"]), u["name"] or None


async def _send_one(deps: Deps, row: dict[str, Any]) -> None:
    attempt = row["attempts"]
    address, locale, name = await _recipient(deps, row)
    if address is None:
        if attempt >= deps.unknown_recipient_attempts:
            return await _record(deps, row, "failed", "recipient unknown: no auth.user-registered for this user")
        return await _record(deps, row, "retry", "recipient not known yet (waiting for auth.user-registered)")
    params = dict(row["params"])
    if row["kind"] == "invitation":
        try:
            info = await deps.links.link(params["invitation_id"])
        except LinkGone as exc:
            return await _record(deps, row, "cancelled", f"invitation no longer pending: {exc}")
        except LinkUnavailable as exc:
            return await _record(deps, row, "retry", f"invitations unavailable: {exc}")
        params.update({k: info.get(k) or params.get(k) for k in ("firm_name", "client_name", "expires_at")})
        url = str(info["link"])
    elif row["kind"] in domain.LINKED_KINDS:
        if deps.account_links is None:
            return await _record(deps, row, "retry", "no client of auth's account links configured")
        try:
            info = await deps.account_links.link(params["request_id"])
        except LinkGone as exc:
            return await _record(deps, row, "cancelled", f"account link no longer usable: {exc}")
        except LinkUnavailable as exc:
            return await _record(deps, row, "retry", f"auth unavailable: {exc}")
        params["expires_at"] = info.get("expires_at")
        url = str(info["link"])
    else:
        url = domain.action_url(deps.links_base, row["kind"], params, deps.ui_paths)
    r = deps.renderer.render(row["kind"], locale, params, url=url, user_name=name or params.get("name"))
    msg = EmailMessage()
    msg["From"] = deps.mail_from
    msg["To"] = formataddr((name or params.get("name") or "", address))
    msg["Subject"] = r.subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = f"<{row['id']}@spvhub>"  # stable per outbox row: a duplicate is recognisable
    msg["X-Spvhub-Kind"] = row["kind"]
    msg["X-Spvhub-Notification"] = row["id"]
    msg.set_content(r.text)
    msg.add_alternative(r.html, subtype="html")
    try:
        await deps.sender.send(msg)
    except PermanentFailure as exc:
        return await _record(deps, row, "failed", str(exc), subject=r.subject)
    except TemporaryFailure as exc:
        return await _record(deps, row, "retry", str(exc), subject=r.subject)
    await _record(deps, row, "sent", None, subject=r.subject)


async def _record(deps: Deps, row: dict[str, Any], outcome: str, detail: str | None,
                  subject: str | None = None) -> None:
    attempt = row["attempts"]
    if outcome == "retry" and attempt >= deps.max_attempts:
        outcome, detail = "failed", f"gave up after {attempt} attempts: {detail}"
    values: dict[str, Any] = {"lease_until": None, "last_error": detail}
    if subject:
        values["subject"] = subject
    if outcome == "sent":
        values.update(status="sent", sent_at=func.now(), last_error=None)
    elif outcome == "retry":
        delay = domain.retry_delay(attempt, deps.retry_base, deps.retry_max)
        values.update(status="pending", next_attempt_at=func.now() + timedelta(seconds=delay))
    else:
        values.update(status=outcome)
    async with deps.uow() as uow:
        res = await uow.session.execute(update(email_outbox).where(
            email_outbox.c.id == row["id"], email_outbox.c.status == "sending").values(**values))
        if res.rowcount == 0:  # the lease expired and another sender took it over: its record wins
            return
        await uow.session.execute(insert(delivery_log).values(email_id=row["id"], attempt=attempt, outcome=outcome,
                                                              detail=(detail or "")[:2000] or None))
        if outcome == "sent":
            uow.publish(NotificationSent(notification_id=row["id"], user_id=row["user_id"] or "", kind=row["kind"],
                                         channel="email", cif=row["cif"], source_event_id=row["source_event_id"]))
        await uow.commit()
    if outcome != "sent":
        log.info("e-mail not sent", email_id=row["id"], kind=row["kind"], attempt=attempt, outcome=outcome,
                 detail=(detail or "")[:200])


# ---------------------------------------------------------------- inbox and preferences (API use cases)

async def _locale_for(session: AsyncSession, user: Principal) -> str:
    pref = (await session.execute(select(user_settings.c.locale).where(user_settings.c.user_id == user.user_id))
            ).scalar()
    if pref:
        return domain.normalize_locale(pref)
    known = (await session.execute(select(users.c.locale).where(users.c.user_id == user.user_id))).scalar()
    return domain.normalize_locale(known or user.locale)


def _item(deps: Deps, r: Any, locale: str) -> dict[str, Any]:
    params = dict(r["params"])
    url = domain.action_url(deps.links_base, r["kind"], params, deps.ui_paths)
    rendered = deps.renderer.render(r["kind"], locale, params, url=url)
    return {"id": r["id"], "kind": r["kind"], "cif": r["cif"], "title": rendered.title, "summary": rendered.summary,
            "created_at": r["created_at"], "read": r["read_at"] is not None, "read_at": r["read_at"],
            "url": url, "actionable": r["actionable"], "action_state": r["action_state"],
            "actions": domain.inbox_actions(r["kind"], params, r["action_state"]), "data": params}


async def _unread(session: AsyncSession, user_id: str) -> int:
    return int((await session.execute(select(func.count()).select_from(notifications).where(
        notifications.c.user_id == user_id, notifications.c.read_at.is_(None)))).scalar() or 0)


async def list_inbox(deps: Deps, user: Principal, *, limit: int = 50, before: str | None = None,
                     unread_only: bool = False, kind: str | None = None) -> dict[str, Any]:
    """Newest first; `before` is the `next_cursor` of the previous page."""
    async with deps.uow() as uow:
        locale = await _locale_for(uow.session, user)
        q = select(notifications).where(notifications.c.user_id == user.user_id)
        if unread_only:
            q = q.where(notifications.c.read_at.is_(None))
        if kind:
            q = q.where(notifications.c.kind == kind)
        if before:
            try:
                ts, _, bid = before.partition("|")
                at = datetime.fromisoformat(ts)
            except ValueError as exc:
                raise AppError("`before` is not a cursor returned by this API.", code="invalid_cursor",
                               status=422) from exc
            q = q.where(or_(notifications.c.created_at < at,
                            and_(notifications.c.created_at == at, notifications.c.id < bid)))
        rows = list((await uow.session.execute(q.order_by(notifications.c.created_at.desc(),
                                                          notifications.c.id.desc()).limit(limit + 1))).mappings())
        unread = await _unread(uow.session, user.user_id)
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = f"{rows[-1]['created_at'].isoformat()}|{rows[-1]['id']}" if more and rows else None
    return {"items": [_item(deps, r, locale) for r in rows], "unread": unread, "next_cursor": nxt,
            "locale": locale}


async def unread_count(deps: Deps, user: Principal) -> dict[str, int]:
    async with deps.uow() as uow:
        return {"unread": await _unread(uow.session, user.user_id)}


async def mark_read(deps: Deps, user: Principal, notification_id: str, read: bool = True) -> dict[str, Any]:
    async with deps.uow() as uow:
        row = (await uow.session.execute(update(notifications).where(
            notifications.c.id == notification_id, notifications.c.user_id == user.user_id,
        ).values(read_at=func.coalesce(notifications.c.read_at, func.now()) if read else None)
            .returning(*notifications.c))).mappings().first()
        if row is None:
            raise NotFound("No such notification.", code="notification_not_found")
        await uow.commit()
        locale = await _locale_for(uow.session, user)
        unread = await _unread(uow.session, user.user_id)
    return {**_item(deps, row, locale), "unread": unread}


async def mark_all_read(deps: Deps, user: Principal) -> dict[str, int]:
    async with deps.uow() as uow:
        res = await uow.session.execute(update(notifications).where(
            notifications.c.user_id == user.user_id, notifications.c.read_at.is_(None)).values(read_at=func.now()))
        await uow.commit()
    return {"marked": res.rowcount or 0, "unread": 0}


# the invitation e-mail goes to a person without account; the account's own e-mails cannot be switched off
EMAIL_KINDS = [k for k in KINDS if k != "invitation" and k not in domain.ACCOUNT_KINDS]


async def get_preferences(deps: Deps, user: Principal) -> dict[str, Any]:
    async with deps.uow() as uow:
        s = uow.session
        locale_pref = (await s.execute(select(user_settings.c.locale).where(
            user_settings.c.user_id == user.user_id))).scalar()
        locale = await _locale_for(s, user)
        prefs = {r.kind: r.email for r in await s.execute(select(email_preferences).where(
            email_preferences.c.user_id == user.user_id))}
        cifs = await accessible_cifs(s, access_grants, user.user_id)
        digest = {r.cif: r.invoice_digest for r in await s.execute(select(company_preferences).where(
            company_preferences.c.user_id == user.user_id))}
        names = {r.cif: r.name for r in await s.execute(select(companies).where(companies.c.cif.in_(cifs)))}
    return {"locale": locale, "locale_chosen": locale_pref is not None, "locales": list(domain.LOCALES),
            "email": {k: prefs.get(k, KINDS[k].email_default) for k in EMAIL_KINDS},
            "companies": [{"cif": c, "name": names.get(c), "invoice_digest": digest.get(c, True)} for c in cifs]}


async def update_preferences(deps: Deps, user: Principal, *, locale: str | None = None,
                             email: dict[str, bool] | None = None,
                             company_digest: dict[str, bool] | None = None) -> dict[str, Any]:
    """Partial update in one transaction: a bad kind or an inaccessible company changes nothing."""
    async with deps.uow() as uow:
        s = uow.session
        if locale is not None:
            if locale not in domain.LOCALES:
                raise AppError(f"Unsupported language '{locale}'; choose one of {', '.join(domain.LOCALES)}.",
                               code="unsupported_locale", status=422)
            stmt = insert(user_settings).values(user_id=user.user_id, locale=locale)
            await s.execute(stmt.on_conflict_do_update(index_elements=["user_id"],
                                                       set_={"locale": locale, "updated_at": func.now()}))
        for kind, on in (email or {}).items():
            if kind not in EMAIL_KINDS:
                raise AppError(f"Unknown notification kind '{kind}'.", code="unknown_notification_kind",
                               status=422, details={"kinds": EMAIL_KINDS})
            stmt = insert(email_preferences).values(user_id=user.user_id, kind=kind, email=bool(on))
            await s.execute(stmt.on_conflict_do_update(index_elements=["user_id", "kind"], set_={"email": bool(on)}))
        for cif, on in (company_digest or {}).items():
            await require_access(s, access_grants, user.user_id, cif)
            stmt = insert(company_preferences).values(user_id=user.user_id, cif=cif, invoice_digest=bool(on))
            await s.execute(stmt.on_conflict_do_update(index_elements=["user_id", "cif"],
                                                       set_={"invoice_digest": bool(on)}))
        await uow.commit()
    return await get_preferences(deps, user)


EVENT_HANDLERS: dict[type[Event], Callable[..., Any]] = {
    InvitationSent: on_invitation_sent,
    InvitationClaimed: on_invitation_claimed,
    InvitationAccepted: on_invitation_accepted,
    InvitationDeclined: on_invitation_declined,
    InvitationExpired: on_invitation_expired,
    InvitationRevoked: on_invitation_revoked,
    TokenExpiring: on_token_expiring,
    ReauthorizationRequired: on_reauthorization_required,
    TokenRefreshed: on_token_refreshed,
    InvoiceDownloaded: on_invoice_downloaded,
    InvoiceErrorReceived: on_invoice_error,
    InvoiceRejected: on_invoice_rejected,
    MessageExpiring: on_message_expiring,
    FilingDeadlineApproaching: on_filing_deadline_approaching,
    FiledLate: on_filed_late,
    TransportAssigned: on_transport_assigned,
    UitExpiring: on_uit_expiring,
    AccessLost: on_access_lost,
    EndpointDisabled: on_webhook_disabled,
    CollaborationStarted: on_collaboration_started,
    CollaborationEnded: on_collaboration_ended,
    JoinRequested: on_join_requested,
    MembershipVerified: on_membership_verified,
    AccountEmailRequested: on_account_email,
}
READ_MODEL_HANDLERS: dict[type[Event], Callable[..., Any]] = {
    UserRegistered: on_user_registered,
    EmailVerified: on_email_verified,
    CompanyRegistered: on_company,
    CompanyUpdated: on_company,
}
