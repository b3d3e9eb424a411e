"""The e-mail sender job: reserve a batch of due e-mails (a lease), send each outside any transaction, record each
attempt (sent, retried with backoff, failed or cancelled) and publish `notifier.notification-sent` for a sent one."""
from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from spvhub_common.events.notifier import NotificationSent
from spvhub_common.logging import get_logger

from spvhub_notifier import domain
from spvhub_notifier.adapters import repository as repo
from spvhub_notifier.adapters.invitations_client import LinkGone, LinkUnavailable
from spvhub_notifier.adapters.repository import OutboxEmail
from spvhub_notifier.adapters.smtp import PermanentFailure, TemporaryFailure
from spvhub_notifier.handlers.deps import Deps

log = get_logger(__name__)


async def send_due_emails(deps: Deps) -> int:
    """Send what is due: reserve a batch (lease), send each outside any transaction, record each attempt."""
    async with deps.uow() as uow:
        emails = await repo.lease_due_emails(uow.session, deps.batch, deps.lease)
        if not emails:
            return 0
        await uow.commit()
    for email in emails:
        await _send_one(deps, email)
    return len(emails)


async def _recipient(deps: Deps, email: OutboxEmail) -> tuple[str | None, str, str | None]:
    """(address, locale, name) at send time: a user's address and language (auth's profile locale) are read from the
    read model; an e-mail to a bare address (an invitation, an account e-mail) keeps the language of its event."""
    if email.to_address:
        return email.to_address, domain.normalize_locale(email.locale), None
    if email.user_id is None:  # neither an address nor a user: nobody to send to
        return None, domain.normalize_locale(None), None
    async with deps.uow() as uow:
        who = await repo.person(uow.session, email.user_id)
    if who is None:
        return None, domain.normalize_locale(None), None
    return who.email, domain.normalize_locale(who.locale), who.name or None


async def _send_one(deps: Deps, email: OutboxEmail) -> None:
    attempt = email.attempts
    address, locale, name = await _recipient(deps, email)
    if address is None:
        if attempt >= deps.unknown_recipient_attempts:
            return await _record(deps, email, "failed", "recipient unknown: no auth.user-registered for this user")
        return await _record(deps, email, "retry", "recipient not known yet (waiting for auth.user-registered)")
    params = dict(email.params)
    if email.kind == "invitation":
        try:
            info = await deps.links.link(params["invitation_id"])
        except LinkGone as exc:
            return await _record(deps, email, "cancelled", f"invitation no longer pending: {exc}")
        except LinkUnavailable as exc:
            return await _record(deps, email, "retry", f"invitations unavailable: {exc}")
        params.update({k: info.get(k) or params.get(k)
                       for k in ("firm_name", "client_name", "expires_at", "client_kind", "client_tax_id")})
        url = str(info["link"])
    elif email.kind in domain.LINKED_KINDS:
        if deps.account_links is None:
            return await _record(deps, email, "retry", "no client of auth's account links configured")
        try:
            info = await deps.account_links.link(params["request_id"])
        except LinkGone as exc:
            return await _record(deps, email, "cancelled", f"account link no longer usable: {exc}")
        except LinkUnavailable as exc:
            return await _record(deps, email, "retry", f"auth unavailable: {exc}")
        params["expires_at"] = info.get("expires_at")
        url = str(info["link"])
    else:
        url = domain.action_url(deps.links_base, email.kind, params, deps.ui_paths)
    r = deps.renderer.render(email.kind, locale, params, url=url, user_name=name or params.get("name"))
    msg = EmailMessage()
    msg["From"] = deps.mail_from
    msg["To"] = formataddr((name or params.get("name") or "", address))
    msg["Subject"] = r.subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = f"<{email.id}@spvhub>"  # stable per outbox row: a duplicate is recognisable
    msg["X-Spvhub-Kind"] = email.kind
    msg["X-Spvhub-Notification"] = email.id
    msg.set_content(r.text)
    msg.add_alternative(r.html, subtype="html")
    try:
        await deps.sender.send(msg)
    except PermanentFailure as exc:
        return await _record(deps, email, "failed", str(exc), subject=r.subject)
    except TemporaryFailure as exc:
        return await _record(deps, email, "retry", str(exc), subject=r.subject)
    await _record(deps, email, "sent", None, subject=r.subject)


async def _record(deps: Deps, email: OutboxEmail, outcome: str, detail: str | None,
                  subject: str | None = None) -> None:
    attempt = email.attempts
    if outcome == "retry" and attempt >= deps.max_attempts:
        outcome, detail = "failed", f"gave up after {attempt} attempts: {detail}"
    retry_in = domain.retry_delay(attempt, deps.retry_base, deps.retry_max) if outcome == "retry" else 0.0
    async with deps.uow() as uow:
        if not await repo.record_attempt(uow.session, email, outcome, detail, subject=subject, retry_in=retry_in):
            return
        if outcome == "sent":
            uow.publish(NotificationSent(notification_id=email.id, user_id=email.user_id or "", kind=email.kind,
                                         channel="email", cif=email.cif, source_event_id=email.source_event_id))
        await uow.commit()
    if outcome != "sent":
        log.info("e-mail not sent", email_id=email.id, kind=email.kind, attempt=attempt, outcome=outcome,
                 detail=(detail or "")[:200])
