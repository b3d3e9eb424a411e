"""Consumed events -> notices: who is told what about an invitation, a connection, an invoice, a transport, a
collaboration, a membership or the account itself. Each handler runs in the consumer's transaction and writes
through `delivery.deliver` (idempotent per event, channel and recipient)."""
from __future__ import annotations

from typing import Any, TypeAlias

from spvhub_common.access import MANAGERS
from spvhub_common.events import CloudEvent
from spvhub_common.events.auth import AccountEmailRequested, ReauthorizationRequired, TokenExpiring, TokenRefreshed
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
from spvhub_common.events.portfolio import (
    AccessLost,
    CollaborationEnded,
    CollaborationStarted,
    JoinRequested,
    MembershipVerified,
)
from spvhub_common.events.webhooks import EndpointDisabled
from spvhub_common.logging import get_logger
from spvhub_common.uow import SqlUnitOfWork

from spvhub_notifier import domain
from spvhub_notifier.adapters import repository as repo
from spvhub_notifier.domain import Notice
from spvhub_notifier.handlers.delivery import deliver, to_company, users_for_cif
from spvhub_notifier.handlers.deps import Deps

log = get_logger(__name__)

InvitationEvent: TypeAlias = (InvitationSent | InvitationClaimed | InvitationAccepted | InvitationDeclined
                              | InvitationExpired | InvitationRevoked)


# ---------------------------------------------------------------- the account's own e-mails

async def on_account_email(event: AccountEmailRequested, envelope: CloudEvent, uow: SqlUnitOfWork,
                           deps: Deps) -> None:
    """The account's own e-mails go to the address named (for a change, the new or the old one), in the
    account's language; a link is fetched from auth when the e-mail is sent."""
    if event.kind not in domain.ACCOUNT_KINDS:
        log.warning("unknown account e-mail kind ignored", kind=event.kind)
        return
    params = {"request_id": event.request_id, "name": event.name, "email": event.email,
              "new_email": event.new_email}
    await deliver(uow, Notice(event.kind, params, email_to=event.email,
                              email_locale=domain.normalize_locale(event.locale)), envelope.id)


# ---------------------------------------------------------------- invitations

def _inv_params(event: InvitationEvent) -> dict[str, Any]:
    return {"invitation_id": event.invitation_id, "firm_cif": event.firm_cif, "client_cif": event.client_cif,
            "firm_name": event.firm_name, "client_name": event.client_name}


async def _with_names(uow: SqlUnitOfWork, params: dict[str, Any]) -> dict[str, Any]:
    params["firm_name"] = params.get("firm_name") or await repo.company_name(uow.session, params["firm_cif"])
    params["client_name"] = params.get("client_name") or await repo.company_name(uow.session, params["client_cif"])
    return params


async def on_invitation_sent(event: InvitationSent, envelope: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    """E-mail to the client's representative (no account yet); the link is fetched when the e-mail is sent."""
    params = await _with_names(uow, {**_inv_params(event), "name": event.name,
                                     "expires_at": event.expires_at.isoformat(), "resent": event.resent})
    await deliver(uow, Notice("invitation", params, cif=event.client_cif, email_to=event.email,
                              email_locale=event.locale), envelope.id)


async def on_invitation_claimed(event: InvitationClaimed, envelope: CloudEvent, uow: SqlUnitOfWork,
                                deps: Deps) -> None:
    """The claimer, and the client's verified owners and administrators: only they may answer, so they must know
    (a claim on a company that already has a verified owner does not let the claimer answer)."""
    params = await _with_names(uow, _inv_params(event))
    managers = await users_for_cif(uow, event.client_cif, direct_only=True, roles=MANAGERS)
    await deliver(uow, Notice("invitation_received", params, cif=event.client_cif,
                              users=[event.user_id, *managers]), envelope.id)


async def _to_firm(kind: str, event: InvitationEvent, envelope: CloudEvent, uow: SqlUnitOfWork,
                   **extra: Any) -> None:
    params = await _with_names(uow, {**_inv_params(event), **extra})
    await deliver(uow, Notice(kind, params, cif=event.firm_cif,
                              users=await users_for_cif(uow, event.firm_cif, direct_only=True)), envelope.id)


async def on_invitation_accepted(event: InvitationAccepted, envelope: CloudEvent, uow: SqlUnitOfWork,
                                 deps: Deps) -> None:
    await repo.settle_action(uow.session, event.invitation_id, "accepted")
    await _to_firm("invitation_accepted", event, envelope, uow)


async def on_invitation_declined(event: InvitationDeclined, envelope: CloudEvent, uow: SqlUnitOfWork,
                                 deps: Deps) -> None:
    await repo.settle_action(uow.session, event.invitation_id, "declined")
    await _to_firm("invitation_declined", event, envelope, uow)


async def on_invitation_expired(event: InvitationExpired, envelope: CloudEvent, uow: SqlUnitOfWork,
                                deps: Deps) -> None:
    await _to_firm("invitation_expired", event, envelope, uow,
                   expired_at=event.expired_at.isoformat() if event.expired_at else None)


async def on_invitation_revoked(event: InvitationRevoked, envelope: CloudEvent, uow: SqlUnitOfWork,
                                deps: Deps) -> None:
    await repo.settle_action(uow.session, event.invitation_id, "revoked")


# ---------------------------------------------------------------- ANAF connections

async def _holder_people(uow: SqlUnitOfWork, cif: str) -> list[str]:
    """About a connection: the holder company's own verified people. Not the firms' accountants reaching it as a
    client, not the person who authorized it once (unless still one of them), not other tenants whose companies
    the certificate also covers: whether their sync stops is told by `portfolio.access-lost`."""
    return await users_for_cif(uow, cif, direct_only=True)


async def on_token_expiring(event: TokenExpiring, envelope: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    await to_company(uow, "token_expiring", event.company_cif, envelope.id, {
        "connection_id": event.connection_id, "days_left": event.days_left,
        "must_act_by": event.must_act_by.isoformat()},
        recipients=await _holder_people(uow, event.company_cif))


async def on_reauthorization_required(event: ReauthorizationRequired, envelope: CloudEvent, uow: SqlUnitOfWork,
                                      deps: Deps) -> None:
    await to_company(uow, "reauthorization_required", event.company_cif, envelope.id, {
        "connection_id": event.connection_id, "reason": event.reason, "message": event.message},
        recipients=await _holder_people(uow, event.company_cif))


async def on_token_refreshed(event: TokenRefreshed, envelope: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    if not event.after_warning:  # routine refreshes are silent
        return
    await to_company(uow, "authorization_renewed", event.company_cif, envelope.id, {
        "connection_id": event.connection_id, "refresh_expires_at": event.refresh_expires_at.isoformat()},
        recipients=await _holder_people(uow, event.company_cif))


# ---------------------------------------------------------------- e-Factura

async def on_invoice_downloaded(event: InvoiceDownloaded, envelope: CloudEvent, uow: SqlUnitOfWork,
                                deps: Deps) -> None:
    """Not told one by one: queued for the company's next digest."""
    data = event.model_dump(mode="json", include={"message_id", "direction", "document_type", "number",
                                                  "issue_date", "partner_cif", "partner_name", "currency",
                                                  "total_amount"})
    await repo.queue_digest_item(uow.session, envelope.id, event.cif, data)


async def on_invoice_error(event: InvoiceErrorReceived, envelope: CloudEvent, uow: SqlUnitOfWork,
                           deps: Deps) -> None:
    """An upload made outside spvhub was rejected: tell the company. A submission made through spvhub is told once,
    by its `invoice_rejected` notice (to the sender, each error explained)."""
    if event.submission_id:
        return
    await to_company(uow, "invoice_error", event.cif, envelope.id, {
        "message_id": event.message_id, "upload_index": event.upload_index, "errors": list(event.errors)[:20]})


async def on_invoice_rejected(event: InvoiceRejected, envelope: CloudEvent, uow: SqlUnitOfWork,
                              deps: Deps) -> None:
    """A submission was rejected: tell the person who submitted it (while they can still see the company), with
    each error explained; without a known sender, everyone with access to the company."""
    users = await users_for_cif(uow, event.cif)
    recipients = [event.submitted_by] if event.submitted_by in users else users
    params = {"cif": event.cif, "company_name": await repo.company_name(uow.session, event.cif),
              "submission_id": event.submission_id, "number": event.number, "stage": event.stage,
              "upload_index": event.upload_index, "errors": [dict(e) for e in event.errors[:20]]}
    await deliver(uow, Notice("invoice_rejected", params, cif=event.cif, users=recipients), envelope.id)


async def on_filing_deadline_approaching(event: FilingDeadlineApproaching, envelope: CloudEvent,
                                         uow: SqlUnitOfWork, deps: Deps) -> None:
    """An invoice still to be filed is close to its legal deadline: everyone who works on the company's invoices
    (its people and its collaborating firm's), found as for a rejected submission."""
    await to_company(uow, "filing_deadline_approaching", event.cif, envelope.id, {
        "submission_id": event.submission_id, "number": event.number, "issue_date": event.issue_date.isoformat(),
        "deadline": event.deadline.isoformat(), "working_hours_left": event.working_hours_left,
        "state": event.state, **({"draft_id": event.draft_id} if event.draft_id else {})})


async def on_filed_late(event: FiledLate, envelope: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    """An invoice was filed after its legal deadline: the company and its collaborating firm, once."""
    await to_company(uow, "filed_late", event.cif, envelope.id, {
        "submission_id": event.submission_id, "number": event.number, "issue_date": event.issue_date.isoformat(),
        "deadline": event.deadline.isoformat(), "filed_at": event.filed_at.isoformat(),
        "upload_index": event.upload_index, "working_days_late": event.working_days_late,
        **({"filed_outside": True, "invoice_id": event.invoice_id, "message_id": event.message_id}
           if event.filed_outside else {})})


async def on_message_expiring(event: MessageExpiring, envelope: CloudEvent, uow: SqlUnitOfWork,
                              deps: Deps) -> None:
    await to_company(uow, "message_expiring", event.cif, envelope.id, {
        "message_id": event.message_id, "purge_at": event.purge_at.isoformat()})


# ---------------------------------------------------------------- e-Transport

async def on_transport_assigned(event: TransportAssigned, envelope: CloudEvent, uow: SqlUnitOfWork,
                                deps: Deps) -> None:
    await to_company(uow, "transport_assigned", event.carrier_cif, envelope.id, event.model_dump(
        mode="json", include={"uit", "declarant_cif", "vehicle", "transport_date", "uit_expires_at",
                              "route_start", "route_end"}))


async def on_uit_expiring(event: UitExpiring, envelope: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    await to_company(uow, "uit_expiring", event.carrier_cif, envelope.id, {
        "uit": event.uit, "uit_expires_at": event.uit_expires_at.isoformat()})


# ---------------------------------------------------------------- access, webhooks, collaborations, members

async def on_access_lost(event: AccessLost, envelope: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    """Sent by portfolio only when the company's sync actually stops; it names exactly who must be told."""
    await to_company(uow, "access_lost", event.cif, envelope.id,
                     {"connection_id": event.connection_id, "reason": event.reason},
                     recipients=list(event.notify_user_ids))


async def on_webhook_disabled(event: EndpointDisabled, envelope: CloudEvent, uow: SqlUnitOfWork,
                              deps: Deps) -> None:
    """The webhooks service names exactly who is told: the tenant company's verified owners and administrators."""
    await to_company(uow, "webhook_disabled", event.tenant_cif, envelope.id, {
        "endpoint_id": event.endpoint_id, "endpoint_url": event.url,
        "failing_since": event.failing_since.isoformat(), "last_error": event.last_error[:300]},
        recipients=list(event.notify_user_ids))


async def _collaboration(kind: str, event: CollaborationStarted | CollaborationEnded, envelope: CloudEvent,
                         uow: SqlUnitOfWork, **extra: Any) -> None:
    """A collaboration changes only with the client's consent, and both sides' owners and administrators hear
    of every start and end."""
    recipients = [*await users_for_cif(uow, event.firm_cif, direct_only=True, roles=MANAGERS),
                  *await users_for_cif(uow, event.client_cif, direct_only=True, roles=MANAGERS)]
    params = {"firm_cif": event.firm_cif, "client_cif": event.client_cif,
              "firm_name": await repo.company_name(uow.session, event.firm_cif),
              "client_name": await repo.company_name(uow.session, event.client_cif), **extra}
    await deliver(uow, Notice(kind, params, cif=event.client_cif, users=recipients), envelope.id)


async def on_collaboration_started(event: CollaborationStarted, envelope: CloudEvent, uow: SqlUnitOfWork,
                                   deps: Deps) -> None:
    await _collaboration("collaboration_started", event, envelope, uow, may_file=event.may_file)


async def on_collaboration_ended(event: CollaborationEnded, envelope: CloudEvent, uow: SqlUnitOfWork,
                                 deps: Deps) -> None:
    if event.reason.startswith("invitation_"):
        # a pending collaboration closed with its invitation (declined, expired, withdrawn): it never started, and
        # the invitation's own notices tell who needs to know
        return
    await _collaboration("collaboration_ended", event, envelope, uow, reason=event.reason)


async def on_join_requested(event: JoinRequested, envelope: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    """Someone asked to join a company that already has a verified owner: portfolio names who decides."""
    who = await repo.person(uow.session, event.user_id)
    await to_company(uow, "join_requested", event.cif, envelope.id, {
        "user_id": event.user_id, "requester_name": who.name if who else None,
        "requester_email": who.email if who else None, "via": event.via, "invitation_id": event.invitation_id,
        "firm_cif": event.firm_cif, "firm_name": await repo.company_name(uow.session, event.firm_cif)},
        recipients=list(event.notify_user_ids))


async def on_membership_verified(event: MembershipVerified, envelope: CloudEvent, uow: SqlUnitOfWork,
                                 deps: Deps) -> None:
    await to_company(uow, "company_verified", event.cif, envelope.id, {"role": event.role, "via": event.via},
                     recipients=[event.user_id])
