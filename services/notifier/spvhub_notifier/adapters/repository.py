"""SQL of the notifier: the read models (users, companies), the inbox, the e-mail outbox and its delivery log, the
invoice digest queue and the preferences. Functions take the session of the caller's unit of work and return small
typed records; the unique constraints of `orm` make every delivery idempotent per (event, channel, recipient)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from spvhub_common.access import accessible_cifs, verified_users
from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from spvhub_notifier.adapters.orm import (
    access_grants,
    companies,
    company_preferences,
    delivery_log,
    digest_items,
    email_outbox,
    email_preferences,
    notifications,
    users,
)


@dataclass(frozen=True)
class Person:
    """A user as auth last announced them (the read model)."""

    user_id: str
    email: str
    name: str
    locale: str


@dataclass(frozen=True)
class Notification:
    """One inbox item."""

    id: str
    user_id: str
    kind: str
    cif: str | None
    params: dict[str, Any]
    actionable: bool
    action_state: str | None
    created_at: datetime
    read_at: datetime | None

    @classmethod
    def of(cls, r: RowMapping) -> Notification:
        return cls(id=r["id"], user_id=r["user_id"], kind=r["kind"], cif=r["cif"], params=dict(r["params"]),
                   actionable=r["actionable"], action_state=r["action_state"], created_at=r["created_at"],
                   read_at=r["read_at"])


@dataclass(frozen=True)
class OutboxEmail:
    """One e-mail to send: to a user (address and language read at send time) or to a direct address."""

    id: str
    source_event_id: str
    user_id: str | None
    to_address: str | None
    locale: str | None
    kind: str
    cif: str | None
    params: dict[str, Any]
    attempts: int
    created_at: datetime

    @classmethod
    def of(cls, r: RowMapping) -> OutboxEmail:
        return cls(id=r["id"], source_event_id=r["source_event_id"], user_id=r["user_id"],
                   to_address=r["to_address"], locale=r["locale"], kind=r["kind"], cif=r["cif"],
                   params=dict(r["params"]), attempts=r["attempts"], created_at=r["created_at"])


@dataclass(frozen=True)
class DigestItem:
    """A downloaded invoice waiting for its company's next digest."""

    source_event_id: str
    cif: str
    params: dict[str, Any]


# ---------------------------------------------------------------- read models

async def upsert_user(session: AsyncSession, user_id: str, email: str, name: str, locale: str) -> None:
    stmt = insert(users).values(user_id=user_id, email=email, name=name, locale=locale)
    # a row without address was written by a profile change read before the registration: that change is newer
    # than the registration's name and language, so it stays
    from_profile = users.c.email == ""
    await session.execute(stmt.on_conflict_do_update(index_elements=["user_id"], set_={
        "email": stmt.excluded.email,
        "name": case((from_profile, users.c.name), else_=stmt.excluded.name),
        "locale": case((from_profile, users.c.locale), else_=stmt.excluded.locale),
        "updated_at": func.now()}))


async def set_user_profile(session: AsyncSession, user_id: str, name: str, locale: str) -> None:
    """Name and language from auth's profile; a user not registered here yet gets a row without address (nothing
    is sent to it until the registration brings the address)."""
    stmt = insert(users).values(user_id=user_id, email="", name=name, locale=locale)
    await session.execute(stmt.on_conflict_do_update(index_elements=["user_id"], set_={
        "name": stmt.excluded.name, "locale": stmt.excluded.locale, "updated_at": func.now()}))


async def set_user_email(session: AsyncSession, user_id: str, email: str) -> None:
    await session.execute(update(users).where(users.c.user_id == user_id).values(email=email, updated_at=func.now()))


async def person(session: AsyncSession, user_id: str) -> Person | None:
    r = (await session.execute(select(users).where(users.c.user_id == user_id))).mappings().first()
    if r is None or not r["email"]:  # no address yet: known only from a profile change, not registered here
        return None
    return Person(r["user_id"], r["email"], r["name"], r["locale"])


async def known_locale(session: AsyncSession, user_id: str) -> str | None:
    """The user's one language, as auth announced it (registration, then each profile change)."""
    return (await session.execute(select(users.c.locale).where(users.c.user_id == user_id))).scalar()


async def upsert_company(session: AsyncSession, cif: str, name: str) -> None:
    stmt = insert(companies).values(cif=cif, name=name)
    await session.execute(stmt.on_conflict_do_update(index_elements=["cif"], set_={
        "name": stmt.excluded.name, "updated_at": func.now()}))


async def company_name(session: AsyncSession, cif: str | None) -> str | None:
    if not cif:
        return None
    return (await session.execute(select(companies.c.name).where(companies.c.cif == cif))).scalar()


async def company_names(session: AsyncSession, cifs: Iterable[str]) -> dict[str, str]:
    rows = await session.execute(select(companies.c.cif, companies.c.name).where(companies.c.cif.in_(list(cifs))))
    return {r.cif: r.name for r in rows}


async def users_for_cif(session: AsyncSession, cif: str, *, direct_only: bool = False,
                        roles: tuple[str, ...] | None = None) -> list[str]:
    """The verified users of a company (optionally its own people only, or some roles only)."""
    return await verified_users(session, access_grants, cif, direct_only=direct_only, roles=roles)


async def visible_cifs(session: AsyncSession, user_id: str) -> list[str]:
    return await accessible_cifs(session, access_grants, user_id)


# ---------------------------------------------------------------- inbox

async def add_notification(session: AsyncSession, *, id: str, user_id: str, kind: str, source_event_id: str,
                           cif: str | None, params: dict[str, Any], actionable: bool) -> str | None:
    """The new item's id, or None when this event already reached this user's inbox."""
    return (await session.execute(insert(notifications).values(
        id=id, user_id=user_id, kind=kind, source_event_id=source_event_id, cif=cif, params=params,
        actionable=actionable,
    ).on_conflict_do_nothing(constraint="uq_notifications_event_user").returning(notifications.c.id))).scalar()


async def settle_action(session: AsyncSession, invitation_id: str, state: str) -> None:
    """The accept/decline item of an invitation is answered (or withdrawn): no more buttons, and it counts as read."""
    await session.execute(update(notifications).where(
        notifications.c.kind == "invitation_received", notifications.c.actionable.is_(True),
        notifications.c.params["invitation_id"].astext == invitation_id, notifications.c.action_state.is_(None),
    ).values(action_state=state, read_at=func.coalesce(notifications.c.read_at, func.now())))


async def list_notifications(session: AsyncSession, user_id: str, *, limit: int, unread_only: bool = False,
                             kind: str | None = None,
                             before: tuple[datetime, str] | None = None) -> list[Notification]:
    """Newest first, after the (created_at, id) position `before`."""
    q = select(notifications).where(notifications.c.user_id == user_id)
    if unread_only:
        q = q.where(notifications.c.read_at.is_(None))
    if kind:
        q = q.where(notifications.c.kind == kind)
    if before is not None:
        at, bid = before
        q = q.where(or_(notifications.c.created_at < at,
                        and_(notifications.c.created_at == at, notifications.c.id < bid)))
    q = q.order_by(notifications.c.created_at.desc(), notifications.c.id.desc()).limit(limit)
    return [Notification.of(r) for r in (await session.execute(q)).mappings()]


async def count_unread(session: AsyncSession, user_id: str) -> int:
    return int((await session.execute(select(func.count()).select_from(notifications).where(
        notifications.c.user_id == user_id, notifications.c.read_at.is_(None)))).scalar() or 0)


async def set_read(session: AsyncSession, user_id: str, notification_id: str, read: bool) -> Notification | None:
    """Read keeps the first read time; unread clears it. None when the user has no such item."""
    r = (await session.execute(update(notifications).where(
        notifications.c.id == notification_id, notifications.c.user_id == user_id,
    ).values(read_at=func.coalesce(notifications.c.read_at, func.now()) if read else None)
        .returning(*notifications.c))).mappings().first()
    return None if r is None else Notification.of(r)


async def mark_all_read(session: AsyncSession, user_id: str) -> int:
    res = await session.execute(update(notifications).where(
        notifications.c.user_id == user_id, notifications.c.read_at.is_(None)).values(read_at=func.now()))
    return res.rowcount or 0  # type: ignore[attr-defined]


# ---------------------------------------------------------------- e-mail outbox

async def queue_email(session: AsyncSession, *, id: str, source_event_id: str, recipient: str, kind: str,
                      cif: str | None, params: dict[str, Any], user_id: str | None = None,
                      to_address: str | None = None, locale: str | None = None,
                      notification_id: str | None = None) -> None:
    """`recipient` is `user:<id>` or `email:<address>`; a second row for the same event and recipient is a no-op."""
    await session.execute(insert(email_outbox).values(
        id=id, source_event_id=source_event_id, recipient=recipient, user_id=user_id, to_address=to_address,
        locale=locale, kind=kind, cif=cif, params=params, notification_id=notification_id,
    ).on_conflict_do_nothing(constraint="uq_email_outbox_event_recipient"))


async def lease_due_emails(session: AsyncSession, batch: int, lease_seconds: float) -> list[OutboxEmail]:
    """Reserve up to `batch` due e-mails (pending and due, or sending with an expired lease) for this sender,
    counting the attempt; oldest first."""
    due = or_(and_(email_outbox.c.status == "pending", email_outbox.c.next_attempt_at <= func.now()),
              and_(email_outbox.c.status == "sending", email_outbox.c.lease_until < func.now()))
    ids = [r[0] for r in await session.execute(
        select(email_outbox.c.id).where(due).order_by(email_outbox.c.next_attempt_at, email_outbox.c.created_at)
        .limit(batch).with_for_update(skip_locked=True))]
    if not ids:
        return []
    rows = (await session.execute(
        update(email_outbox).where(email_outbox.c.id.in_(ids)).values(
            status="sending", attempts=email_outbox.c.attempts + 1,
            lease_until=func.now() + timedelta(seconds=lease_seconds))
        .returning(*email_outbox.c))).mappings()
    return sorted((OutboxEmail.of(r) for r in rows), key=lambda e: e.created_at)


async def record_attempt(session: AsyncSession, email: OutboxEmail, outcome: str, detail: str | None, *,
                         subject: str | None = None, retry_in: float = 0.0) -> bool:
    """Close this sender's attempt: `sent`, `retry` (pending again in `retry_in` seconds), `failed` or
    `cancelled`, plus a delivery log row. False (nothing written) when the lease expired and another sender
    took the e-mail over: its record wins."""
    values: dict[str, Any] = {"lease_until": None, "last_error": detail}
    if subject:
        values["subject"] = subject
    if outcome == "sent":
        values.update(status="sent", sent_at=func.now(), last_error=None)
    elif outcome == "retry":
        values.update(status="pending", next_attempt_at=func.now() + timedelta(seconds=retry_in))
    else:
        values.update(status=outcome)
    # the attempt number tells this sender's lease from a later one: after a takeover the row is still `sending`
    res = await session.execute(update(email_outbox).where(
        email_outbox.c.id == email.id, email_outbox.c.status == "sending",
        email_outbox.c.attempts == email.attempts).values(**values))
    if res.rowcount == 0:  # type: ignore[attr-defined]
        return False
    await session.execute(insert(delivery_log).values(email_id=email.id, attempt=email.attempts, outcome=outcome,
                                                      detail=(detail or "")[:2000] or None))
    return True


# ---------------------------------------------------------------- invoice digests

async def queue_digest_item(session: AsyncSession, source_event_id: str, cif: str, params: dict[str, Any]) -> None:
    await session.execute(insert(digest_items).values(source_event_id=source_event_id, cif=cif, params=params)
                          .on_conflict_do_nothing())


async def undigested_items(session: AsyncSession) -> list[DigestItem]:
    """Everything not in a digest yet, locked for this run, by company and arrival."""
    rows = (await session.execute(
        select(digest_items).where(digest_items.c.digest_id.is_(None))
        .order_by(digest_items.c.cif, digest_items.c.received_at).with_for_update(skip_locked=True))).mappings()
    return [DigestItem(r["source_event_id"], r["cif"], dict(r["params"])) for r in rows]


async def mark_digested(session: AsyncSession, source_event_ids: list[str], digest_id: str) -> None:
    await session.execute(update(digest_items).where(
        digest_items.c.source_event_id.in_(source_event_ids)).values(digest_id=digest_id))


async def digest_opted_out(session: AsyncSession, cif: str) -> set[str]:
    """The users who switched the company's invoice digest off."""
    return {r[0] for r in await session.execute(select(company_preferences.c.user_id).where(
        company_preferences.c.cif == cif, company_preferences.c.invoice_digest.is_(False)))}


# ---------------------------------------------------------------- preferences

async def email_choice(session: AsyncSession, user_id: str, kind: str) -> bool | None:
    """The user's e-mail on/off for a kind; None when never chosen (the kind's default applies)."""
    pref = (await session.execute(select(email_preferences.c.email).where(
        email_preferences.c.user_id == user_id, email_preferences.c.kind == kind))).scalar()
    return None if pref is None else bool(pref)


async def email_choices(session: AsyncSession, user_id: str) -> dict[str, bool]:
    return {r.kind: r.email for r in await session.execute(select(email_preferences).where(
        email_preferences.c.user_id == user_id))}


async def set_email_choice(session: AsyncSession, user_id: str, kind: str, on: bool) -> None:
    stmt = insert(email_preferences).values(user_id=user_id, kind=kind, email=on)
    await session.execute(stmt.on_conflict_do_update(index_elements=["user_id", "kind"], set_={"email": on}))


async def digest_choices(session: AsyncSession, user_id: str) -> dict[str, bool]:
    return {r.cif: r.invoice_digest for r in await session.execute(select(company_preferences).where(
        company_preferences.c.user_id == user_id))}


async def set_digest_choice(session: AsyncSession, user_id: str, cif: str, on: bool) -> None:
    stmt = insert(company_preferences).values(user_id=user_id, cif=cif, invoice_digest=on)
    await session.execute(stmt.on_conflict_do_update(index_elements=["user_id", "cif"],
                                                     set_={"invoice_digest": on}))
