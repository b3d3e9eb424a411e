"""Use cases of the invitations service (commands from the API, events from Kafka, the expiry job) and the
routing table of consumed events at the bottom."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from spvhub_common.access import MANAGERS, require_access, require_grant
from spvhub_common.clock import Clock
from spvhub_common.errors import AppError, Conflict, Forbidden, NotFound
from spvhub_common.events import CloudEvent, Event
from spvhub_common.events.auth import ConnectionRevoked
from spvhub_common.events.invitations import (
    InvitationAccepted,
    InvitationClaimed,
    InvitationDeclined,
    InvitationExpired,
    InvitationRevoked,
    InvitationSent,
)
from spvhub_common.events.portfolio import CompanyRegistered, CompanyUpdated, RightsDiscovered
from spvhub_common.ids import InvalidTaxId, normalize_cif, strip_ro
from spvhub_common.logging import get_logger
from spvhub_common.paging import decode_cursor, encode_cursor, invalid_cursor
from spvhub_common.runtime import EventHandler
from spvhub_common.security import Principal
from spvhub_common.uow import SqlUnitOfWork

from spvhub_invitations import domain
from spvhub_invitations.adapters import repository as repo
from spvhub_invitations.adapters.orm import access_grants
from spvhub_invitations.adapters.repository import Row
from spvhub_invitations.domain import InvalidInput, Status

log = get_logger(__name__)


class Gone(AppError):
    status, code = 410, "gone"


@dataclass
class Deps:
    """What the use cases need: a unit-of-work factory, the clock, the token key and the public base URL."""

    uow: Callable[[], SqlUnitOfWork]
    clock: Clock
    token_key: bytes
    public_base_url: str
    max_bulk: int = 500
    join_path: str = "/join?invitation={token}"  # the person-facing link: public_base_url + this
    access_wait_seconds: float = 3.0  # how long an answer waits for the access read model to catch up
    expiry_interval: float = 60.0  # seconds between scans for expired invitations


@dataclass
class NewInvitation:
    client_cif: str
    name: str
    email: str
    phone: str
    locale: str = "ro"


@dataclass
class ItemResult:
    index: int
    client_cif: str
    ok: bool
    invitation: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


@dataclass
class BulkResult:
    items: list[ItemResult] = field(default_factory=list)

    @property
    def created(self) -> int:
        return sum(1 for i in self.items if i.ok)


def _err(code: str, message: str, **details: Any) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details}


def view(row: Row, now: datetime, names: dict[str, str] | None = None) -> dict[str, Any]:
    """The API shape of an invitation (the status accounts for an expiry the job has not marked yet)."""
    names = names or {}
    st = domain.effective_status(domain.InvitationView(row["status"], row["expires_at"]), now)
    return {"id": row["id"], "firm_cif": row["firm_cif"], "firm_name": names.get(row["firm_cif"]),
            "client_cif": row["client_cif"], "client_name": names.get(row["client_cif"]),
            "name": row["name"], "email": row["email"], "phone": row["phone"], "locale": row["locale"],
            "status": st.value, "created_at": row["created_at"], "sent_at": row["sent_at"],
            "expires_at": row["expires_at"], "send_count": row["send_count"], "claimed_by": row["claimed_by"],
            "claimed_at": row["claimed_at"], "answered_at": row["answered_at"], "expired_at": row["expired_at"],
            "revoked_at": row["revoked_at"]}


def _event_base(row: Row, names: dict[str, str]) -> dict[str, Any]:
    return {"invitation_id": row["id"], "firm_cif": row["firm_cif"], "client_cif": row["client_cif"],
            "firm_name": names.get(row["firm_cif"]), "client_name": names.get(row["client_cif"])}


def _sent_event(row: Row, names: dict[str, str], resent: bool) -> InvitationSent:
    return InvitationSent(**_event_base(row, names), email=row["email"], name=row["name"],
                          phone=row["phone"], locale=row["locale"], expires_at=row["expires_at"], resent=resent)


# ---------------------------------------------------------------- the firm: send, resend, revoke, list

async def _require_firm_manager(uow: SqlUnitOfWork, user: Principal, firm_cif: str) -> None:
    """Inviting, re-sending and withdrawing speak for the firm: its own verified owners and administrators."""
    await require_grant(uow.session, access_grants, user.user_id, firm_cif, roles=MANAGERS, direct_only=True)


async def _check_firm(uow: SqlUnitOfWork, user: Principal, firm_cif: str) -> None:
    """The three preconditions of journey 2, each with its own code so the client knows what is missing."""
    await _require_firm_manager(uow, user, firm_cif)
    firm = await repo.company(uow.session, firm_cif)
    if firm is None or not firm["provides_accounting_services"]:
        raise Conflict(f"Company {firm_cif} is not marked as providing accounting services; set the flag on "
                       "its profile before inviting clients.", code="accounting_services_flag_missing",
                       details={"firm_cif": firm_cif})
    if not await repo.has_active_efactura(uow.session, firm_cif):
        raise Conflict(f"Company {firm_cif} has no active e-Factura authorization whose rights were discovered; "
                       "authorize e-Factura with the firm's certificate first.", code="no_efactura_authorization",
                       details={"firm_cif": firm_cif})


def _validate(item: NewInvitation) -> NewInvitation:
    return NewInvitation(client_cif=normalize_cif(item.client_cif), name=domain.normalize_name(item.name),
                         email=domain.normalize_email(item.email), phone=domain.normalize_phone(item.phone),
                         locale=item.locale if item.locale in ("ro", "en") else "ro")


async def send_invitations(deps: Deps, user: Principal, firm_cif: str, items: list[NewInvitation]) -> BulkResult:
    """Invite discovered clients, one or many. Each item commits on its own: a bad item is reported with its
    error and leaves nothing behind; the good ones are sent."""
    firm_cif = normalize_cif(firm_cif) if firm_cif else firm_cif
    if not items:
        raise AppError("Send at least one invitation.", code="validation_error", status=422)
    if len(items) > deps.max_bulk:
        raise AppError(f"At most {deps.max_bulk} invitations per request.", code="too_many_items", status=422)
    async with deps.uow() as uow:
        await _check_firm(uow, user, firm_cif)
        discovered = await repo.discovered_clients(uow.session, firm_cif)
    result = BulkResult()
    seen: set[str] = set()
    for index, raw in enumerate(items):
        try:
            item = _validate(raw)
        except InvalidInput as exc:
            result.items.append(ItemResult(index, raw.client_cif, False, error=_err(
                exc.code, exc.message, field=exc.field)))
            continue
        except InvalidTaxId as exc:
            result.items.append(ItemResult(index, raw.client_cif, False, error=_err(
                exc.code, exc.message, field="cif")))
            continue
        cif = item.client_cif
        if cif == firm_cif:
            result.items.append(ItemResult(index, cif, False, error=_err(
                "cannot_invite_self", "A firm cannot invite itself.", field="client_cif")))
            continue
        if cif in seen:
            result.items.append(ItemResult(index, cif, False, error=_err(
                "duplicate_in_request", f"Client {cif} appears more than once in this request.", field="client_cif")))
            continue
        seen.add(cif)
        if cif not in discovered:
            result.items.append(ItemResult(index, cif, False, error=_err(
                "client_not_discovered", f"The firm's e-Factura authorization has no SPV rights on {cif}: only "
                "discovered clients can be invited (a new SPV enrolment takes about a day to appear).",
                field="client_cif")))
            continue
        result.items.append(await _send_one(deps, user, firm_cif, item, index))
    return result


async def _send_one(deps: Deps, user: Principal, firm_cif: str, item: NewInvitation, index: int) -> ItemResult:
    now = deps.clock.now()
    async with deps.uow() as uow:
        existing = await repo.open_or_accepted(uow.session, firm_cif, item.client_cif)
        if existing is not None:
            st = domain.effective_status(domain.InvitationView(existing["status"], existing["expires_at"]), now)
            if st == Status.ACCEPTED:
                return ItemResult(index, item.client_cif, False, error=_err(
                    "already_collaborating", f"Client {item.client_cif} already accepted an invitation from this "
                    "firm.", invitation_id=existing["id"]))
            if st in domain.OPEN:
                return ItemResult(index, item.client_cif, False, error=_err(
                    "already_invited", f"Client {item.client_cif} already has an open invitation ({st.value}); "
                    "resend or revoke it instead.", invitation_id=existing["id"], status=st.value))
            # pending but past expiry: mark it expired now so the new one can take its place
            await _expire_row(uow, existing, now)
        inv_id = str(uuid.uuid4())
        nonce = domain.new_nonce()
        token = domain.derive_token(deps.token_key, inv_id, nonce)
        await repo.insert_invitation(uow.session, {
            "id": inv_id, "firm_cif": firm_cif, "client_cif": item.client_cif, "name": item.name,
            "email": item.email, "phone": item.phone, "locale": item.locale, "status": Status.PENDING.value,
            "token_nonce": nonce, "token_hash": domain.token_hash(token), "created_by": user.user_id,
            "created_at": now, "sent_at": now, "expires_at": domain.expires_at(now), "send_count": 1,
            "updated_at": now})
        row = await repo.get(uow.session, inv_id)
        assert row is not None
        names = await repo.company_names(uow.session, [firm_cif, item.client_cif])
        uow.publish(_sent_event(row, names, resent=False))
        if not await repo.commit_unique(uow):  # a concurrent request invited the same client first
            return ItemResult(index, item.client_cif, False, error=_err(
                "already_invited", f"Client {item.client_cif} already has an open invitation."))
        return ItemResult(index, item.client_cif, True, invitation=view(row, now, names))


async def _firm_invitation(uow: SqlUnitOfWork, user: Principal, invitation_id: str) -> Row:
    row = await repo.get(uow.session, invitation_id, for_update=True)
    if row is None:
        raise NotFound("No such invitation.", code="invitation_not_found")
    await _require_firm_manager(uow, user, row["firm_cif"])
    return row


async def resend(deps: Deps, user: Principal, invitation_id: str, *, name: str | None = None,
                 email: str | None = None, phone: str | None = None) -> dict[str, Any]:
    """A new link (the old one stops working) and a new 15-day expiry; contact details may be corrected."""
    now = deps.clock.now()
    async with deps.uow() as uow:
        row = await _firm_invitation(uow, user, invitation_id)
        st = domain.effective_status(domain.InvitationView(row["status"], row["expires_at"]), now)
        if st == Status.DECLINED:
            # The client's "no" is final for this invitation: a new link, perhaps to another address, must not
            # give anyone a second chance to answer in the company's name.
            raise Conflict(
                "The client company declined this invitation, so it cannot be sent again.",
                code="invitation_declined", details={"status": st.value},
                messages={"ro": "Compania client a refuzat această invitație, așa că nu mai poate fi retrimisă."})
        if st not in (Status.PENDING, Status.EXPIRED):
            raise Conflict(f"This invitation is {st.value}; only a pending or expired invitation can be re-sent.",
                           code="invitation_not_resendable", details={"status": st.value})
        changes: dict[str, Any] = {}
        try:
            if name is not None:
                changes["name"] = domain.normalize_name(name)
            if email is not None:
                changes["email"] = domain.normalize_email(email)
            if phone is not None:
                changes["phone"] = domain.normalize_phone(phone)
        except InvalidInput as exc:
            raise AppError(exc.message, code=exc.code, status=422, details={"field": exc.field}) from exc
        nonce = domain.new_nonce()
        token = domain.derive_token(deps.token_key, row["id"], nonce)
        await repo.set_fields(uow.session, row["id"], **changes, status=Status.PENDING.value, token_nonce=nonce,
                              token_hash=domain.token_hash(token), sent_at=now, expires_at=domain.expires_at(now),
                              send_count=row["send_count"] + 1, expired_at=None, updated_at=now)
        fresh = await repo.get(uow.session, row["id"])
        assert fresh is not None
        names = await repo.company_names(uow.session, [row["firm_cif"], row["client_cif"]])
        uow.publish(_sent_event(fresh, names, resent=True))
        if not await repo.commit_unique(uow):
            raise Conflict("The client already has another open invitation from this firm.",
                           code="already_invited")
        return view(fresh, now, names)


async def revoke(deps: Deps, user: Principal, invitation_id: str) -> dict[str, Any]:
    now = deps.clock.now()
    async with deps.uow() as uow:
        row = await _firm_invitation(uow, user, invitation_id)
        if row["status"] not in (Status.PENDING, Status.CLAIMED):
            raise Conflict(f"This invitation is {row['status']}; only a pending or claimed invitation can be "
                           "revoked.", code="invitation_not_revocable", details={"status": row["status"]})
        await repo.set_fields(uow.session, row["id"], status=Status.REVOKED.value, revoked_at=now,
                              revoked_by=user.user_id, updated_at=now)
        names = await repo.company_names(uow.session, [row["firm_cif"], row["client_cif"]])
        uow.publish(InvitationRevoked(**_event_base(row, names), revoked_by=user.user_id,
                                      claimed_by=row["claimed_by"]))
        await uow.commit()
        fresh = await repo.get(uow.session, row["id"])
        assert fresh is not None
        return view(fresh, now, names)


def _after(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) position an opaque `next_cursor` names."""
    ts, iid = decode_cursor(cursor, 2)
    try:
        at = datetime.fromisoformat(ts) if isinstance(ts, str) else None
    except ValueError as exc:
        raise invalid_cursor() from exc
    if at is None or at.tzinfo is None or not isinstance(iid, str):
        raise invalid_cursor()
    return at, iid


async def list_for_firm(deps: Deps, user: Principal, firm_cif: str, status: str | None = None, *, limit: int = 50,
                        cursor: str | None = None) -> dict[str, Any]:
    """One page of the firm's invitations, newest first; `cursor` is the `next_cursor` of the previous page."""
    firm_cif = normalize_cif(firm_cif)
    after = _after(cursor) if cursor else None
    now = deps.clock.now()
    async with deps.uow() as uow:
        await require_access(uow.session, access_grants, user.user_id, firm_cif)
        rows = await repo.list_for_firm(uow.session, firm_cif, now=now, status=status, limit=limit + 1, after=after)
        more, rows = len(rows) > limit, rows[:limit]
        names = await repo.company_names(uow.session, [firm_cif] + [r["client_cif"] for r in rows])
    nxt = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more and rows else None
    return {"items": [view(r, now, names) for r in rows], "next_cursor": nxt}


async def candidates(deps: Deps, user: Principal, firm_cif: str) -> dict[str, Any]:
    """The firm's discovered clients with the state of their latest invitation (what to invite next), and
    which precondition is missing, if any."""
    firm_cif = normalize_cif(firm_cif)
    now = deps.clock.now()
    async with deps.uow() as uow:
        await require_access(uow.session, access_grants, user.user_id, firm_cif)
        firm = await repo.company(uow.session, firm_cif)
        efactura = await repo.has_active_efactura(uow.session, firm_cif)
        clients = sorted(await repo.discovered_clients(uow.session, firm_cif))
        latest = await repo.latest_per_client(uow.session, firm_cif)
        names = await repo.company_names(uow.session, clients + [firm_cif])
    missing = []
    if firm is None or not firm["provides_accounting_services"]:
        missing.append("accounting_services_flag")
    if not efactura:
        missing.append("efactura_authorization")
    out = []
    for cif in clients:
        inv = latest.get(cif)
        out.append({"client_cif": cif, "client_name": names.get(cif),
                    "invitation": view(inv, now, names) if inv is not None else None})
    return {"firm_cif": firm_cif, "firm_name": names.get(firm_cif), "missing": missing, "clients": out}


async def get_for_user(deps: Deps, user: Principal, invitation_id: str) -> dict[str, Any]:
    now = deps.clock.now()
    async with deps.uow() as uow:
        row = await repo.get(uow.session, invitation_id)
        if row is None:
            raise NotFound("No such invitation.", code="invitation_not_found")
        if row["claimed_by"] != user.user_id:
            try:
                await require_access(uow.session, access_grants, user.user_id, row["firm_cif"])
            except Forbidden:
                # the client's own verified owners and administrators, who answer it
                await require_grant(uow.session, access_grants, user.user_id, row["client_cif"], roles=MANAGERS,
                                    direct_only=True)
        names = await repo.company_names(uow.session, [row["firm_cif"], row["client_cif"]])
    return view(row, now, names)


# ---------------------------------------------------------------- the client: preview, claim, accept, decline

def _refuse_unusable(row: Row | None, now: datetime) -> Row:
    """Clear refusals for a link that cannot be used (shared by preview and claim)."""
    if row is None:
        raise NotFound("This invitation link is not valid: it may have been replaced by a newer e-mail. Ask the "
                       "firm to send it again.", code="invitation_not_found")
    st = domain.effective_status(domain.InvitationView(row["status"], row["expires_at"]), now)
    if st == Status.EXPIRED:
        raise Gone(f"This invitation expired on {row['expires_at']:%Y-%m-%d} (invitations are valid for 15 days). "
                   "Ask the firm to send it again.", code="invitation_expired",
                   details={"expires_at": row["expires_at"].isoformat()})
    if st == Status.REVOKED:
        raise Gone("This invitation was withdrawn by the firm.", code="invitation_revoked")
    if st != Status.PENDING:
        raise Conflict("This invitation link was already used; sign in to the account created with it.",
                       code="invitation_already_used", details={"status": st.value})
    return row


async def preview(deps: Deps, token: str) -> dict[str, Any]:
    """What the sign-up page shows before the account exists (no authentication: the token is the secret)."""
    now = deps.clock.now()
    if not domain.plausible_token(token):
        raise NotFound("This invitation link is not valid.", code="invitation_not_found")
    async with deps.uow() as uow:
        row = _refuse_unusable(await repo.by_token_hash(uow.session, domain.token_hash(token)), now)
        firm = await repo.company(uow.session, row["firm_cif"])
        client = await repo.company(uow.session, row["client_cif"])
    return {"invitation_id": row["id"], "status": Status.PENDING.value, "expires_at": row["expires_at"],
            "firm": {"cif": row["firm_cif"], "name": firm["name"] if firm else None},
            "client_company": {"cif": row["client_cif"], "name": client["name"] if client else None,
                               "address": client["address"] if client else None,
                               "trade_register_no": client["trade_register_no"] if client else None},
            "representative": {"name": row["name"], "email": row["email"]}}


async def claim(deps: Deps, user: Principal, token: str) -> dict[str, Any]:
    """Single use: the signed-in user takes the invitation; portfolio then adds the client company to the
    account and opens a pending collaboration (from `invitations.invitation-claimed`)."""
    now = deps.clock.now()
    if not domain.plausible_token(token):
        raise NotFound("This invitation link is not valid.", code="invitation_not_found")
    async with deps.uow() as uow:
        row = _refuse_unusable(await repo.by_token_hash(uow.session, domain.token_hash(token), for_update=True), now)
        await repo.set_fields(uow.session, row["id"], status=Status.CLAIMED.value, claimed_by=user.user_id,
                              claimed_at=now, updated_at=now)
        names = await repo.company_names(uow.session, [row["firm_cif"], row["client_cif"]])
        uow.publish(InvitationClaimed(**_event_base(row, names), user_id=user.user_id))
        await uow.commit()
        fresh = await repo.get(uow.session, row["id"])
        assert fresh is not None
        return view(fresh, now, names)


async def _require_client_manager_soon(deps: Deps, user: Principal, client_cif: str) -> None:
    """Only a verified owner or administrator of the client company answers for it. The read model gets a moment
    to catch up: the claimer's membership (and its verification) reaches this service through Kafka a little
    after the claim. A role that is not enough is final at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deps.access_wait_seconds
    while True:
        async with deps.uow() as uow:
            try:
                await require_grant(uow.session, access_grants, user.user_id, client_cif, roles=MANAGERS,
                                    direct_only=True)
                return
            except Forbidden as exc:
                if exc.code not in ("no_access_to_company", "company_not_verified") or loop.time() >= deadline:
                    raise
        await asyncio.sleep(0.2)


async def _answer(deps: Deps, user: Principal, invitation_id: str, accept: bool) -> dict[str, Any]:
    now = deps.clock.now()
    target = Status.ACCEPTED if accept else Status.DECLINED
    async with deps.uow() as uow:
        row = await repo.get(uow.session, invitation_id)
    if row is None:
        raise NotFound("No such invitation.", code="invitation_not_found")
    if row["claimed_by"] is None and row["status"] == Status.PENDING:
        raise Forbidden("Open the invitation link and create your account first.", code="invitation_not_claimed")
    # The collaboration changes only with the client's consent: whoever claimed the link does not matter here.
    await _require_client_manager_soon(deps, user, row["client_cif"])
    async with deps.uow() as uow:
        row = await repo.get(uow.session, invitation_id, for_update=True)
        assert row is not None
        names = await repo.company_names(uow.session, [row["firm_cif"], row["client_cif"]])
        if row["status"] == target:  # a repeated click: same answer, nothing new
            return view(row, now, names)
        if row["status"] != Status.CLAIMED:
            code = "invitation_revoked" if row["status"] == Status.REVOKED else "invitation_already_answered"
            raise Conflict(f"This invitation is already {row['status']}.", code=code,
                           details={"status": row["status"]})
        await repo.set_fields(uow.session, row["id"], status=target.value, answered_at=now, updated_at=now)
        ev_cls = InvitationAccepted if accept else InvitationDeclined
        uow.publish(ev_cls(**_event_base(row, names), user_id=user.user_id))
        await uow.commit()
        fresh = await repo.get(uow.session, row["id"])
        assert fresh is not None
        return view(fresh, now, names)


async def accept(deps: Deps, user: Principal, invitation_id: str) -> dict[str, Any]:
    return await _answer(deps, user, invitation_id, True)


async def decline(deps: Deps, user: Principal, invitation_id: str) -> dict[str, Any]:
    return await _answer(deps, user, invitation_id, False)


async def received(deps: Deps, user: Principal) -> list[dict[str, Any]]:
    """The invitations the caller claimed, and those claimed for a company the caller answers for (a verified owner
    or administrator of the client who did not open the link themselves)."""
    now = deps.clock.now()
    async with deps.uow() as uow:
        managed = await repo.managed_cifs(uow.session, user.user_id)
        rows = await repo.received(uow.session, user.user_id, managed)
        names = await repo.company_names(uow.session, [c for r in rows for c in (r["firm_cif"], r["client_cif"])])
    return [view(r, now, names) for r in rows]


# ---------------------------------------------------------------- internal: the link for the notifier

async def link(deps: Deps, invitation_id: str) -> dict[str, Any]:
    """The current link of a pending invitation, re-derived (never stored); 410 once it cannot be used."""
    now = deps.clock.now()
    async with deps.uow() as uow:
        row = await repo.get(uow.session, invitation_id)
        if row is None:
            raise NotFound("No such invitation.", code="invitation_not_found")
        st = domain.effective_status(domain.InvitationView(row["status"], row["expires_at"]), now)
        if st != Status.PENDING:
            raise Gone(f"The invitation is {st.value}; its link must not be sent.", code="invitation_not_pending",
                       details={"status": st.value})
        names = await repo.company_names(uow.session, [row["firm_cif"], row["client_cif"]])
    token = domain.derive_token(deps.token_key, row["id"], row["token_nonce"])
    base = deps.public_base_url.rstrip("/")
    return {"invitation_id": row["id"], "link": base + deps.join_path.format(token=token),
            "expires_at": row["expires_at"],
            "status": st.value, "email": row["email"], "name": row["name"], "locale": row["locale"],
            "firm_cif": row["firm_cif"], "firm_name": names.get(row["firm_cif"]),
            "client_cif": row["client_cif"], "client_name": names.get(row["client_cif"])}


# ---------------------------------------------------------------- the expiry job

async def _expire_row(uow: SqlUnitOfWork, row: Row, now: datetime) -> None:
    await repo.set_fields(uow.session, row["id"], status=Status.EXPIRED.value, expired_at=now, updated_at=now)
    names = await repo.company_names(uow.session, [row["firm_cif"], row["client_cif"]])
    uow.publish(InvitationExpired(**_event_base(row, names), expired_at=row["expires_at"]))


async def expire_due(deps: Deps, batch: int = 200) -> int:
    """Mark pending invitations past their expiry as expired and tell the firm (`invitation-expired`)."""
    total = 0
    while True:
        now = deps.clock.now()
        async with deps.uow() as uow:
            rows = await repo.due_for_expiry(uow.session, now, batch)
            for row in rows:
                await _expire_row(uow, row, now)
            await uow.commit()
        total += len(rows)
        if len(rows) < batch:
            return total


# ---------------------------------------------------------------- consumed events (read models)
# CIFs written by portfolio and ANAF are read (RO and spaces dropped), never refused: a consumer that raised on an
# odd id would stop its partition.

async def on_company(ev: CompanyRegistered | CompanyUpdated, _env: CloudEvent, uow: SqlUnitOfWork,
                     _deps: Deps) -> None:
    await repo.upsert_company(uow.session, {
        "cif": strip_ro(ev.cif), "name": ev.name, "address": ev.address,
        "trade_register_no": ev.trade_register_no, "vat_payer": ev.vat_payer,
        "provides_accounting_services": ev.provides_accounting_services})


async def on_rights_discovered(ev: RightsDiscovered, _env: CloudEvent, uow: SqlUnitOfWork, _deps: Deps) -> None:
    holder = strip_ro(ev.holder_cif)
    await repo.replace_discovered(uow.session, ev.connection_id, holder, list(ev.services),
                                  [strip_ro(c) for c in ev.cifs])
    await repo.remember_names(uow.session, {strip_ro(c): n.strip() for c, n in sorted(ev.names.items())})


async def on_connection_revoked(ev: ConnectionRevoked, _env: CloudEvent, uow: SqlUnitOfWork,
                                _deps: Deps) -> None:
    await repo.deactivate_connection(uow.session, ev.connection_id)


EVENT_HANDLERS: dict[type[Event], EventHandler] = {
    CompanyRegistered: on_company,
    CompanyUpdated: on_company,
    RightsDiscovered: on_rights_discovered,
    ConnectionRevoked: on_connection_revoked,
}
