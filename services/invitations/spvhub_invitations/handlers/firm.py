"""The accounting firm's side: invite discovered clients (one or in bulk), re-send and withdraw an invitation,
list the firm's invitations and the candidates to invite, read one invitation.

A client is named by its CIF, or, for a natural person, by their CNP (typed in the request's body: it becomes the
person key at once and only its masked form is kept, for display) or by the person key the firm's lists show."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from spvhub_common.access import MANAGERS, require_access, require_grant
from spvhub_common.errors import AppError, Conflict, Forbidden, NotFound
from spvhub_common.events.invitations import InvitationRevoked
from spvhub_common.ids import InvalidTaxId, mask_cnp, parse_tax_id
from spvhub_common.paging import decode_time_cursor, encode_cursor
from spvhub_common.pii import is_person_key, parse_company_id
from spvhub_common.security import Principal
from spvhub_common.uow import SqlUnitOfWork

from spvhub_invitations import domain
from spvhub_invitations.adapters import repository as repo
from spvhub_invitations.adapters.orm import access_grants
from spvhub_invitations.adapters.repository import Invitation
from spvhub_invitations.domain import InvalidInput, Status
from spvhub_invitations.handlers.deps import Deps
from spvhub_invitations.handlers.expiry import expire
from spvhub_invitations.handlers.views import client_identity, event_base, sent_event, status_of, view


@dataclass
class NewInvitation:
    client_cif: str
    name: str
    email: str
    phone: str
    locale: str = "ro"
    client_tax_id: str | None = None  # what to show of the client: the CIF, a typed CNP masked, None for a key


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


async def _require_firm_manager(uow: SqlUnitOfWork, user: Principal, firm_cif: str) -> None:
    """Inviting, re-sending and withdrawing speak for the firm: its own verified owners and administrators."""
    await require_grant(uow.session, access_grants, user.user_id, firm_cif, roles=MANAGERS, direct_only=True)


async def _check_firm(uow: SqlUnitOfWork, user: Principal, firm_cif: str) -> None:
    """The three preconditions of journey 2, each with its own code so the client knows what is missing."""
    await _require_firm_manager(uow, user, firm_cif)
    firm = await repo.company(uow.session, firm_cif)
    if firm is None or not firm.provides_accounting_services:
        raise Conflict(f"Company {firm_cif} is not marked as providing accounting services; set the flag on "
                       "its profile before inviting clients.", code="accounting_services_flag_missing",
                       details={"firm_cif": firm_cif})
    if not await repo.has_active_efactura(uow.session, firm_cif):
        raise Conflict(f"Company {firm_cif} has no active e-Factura authorization whose rights were discovered; "
                       "authorize e-Factura with the firm's certificate first.", code="no_efactura_authorization",
                       details={"firm_cif": firm_cif})


def client_of(deps: Deps, raw: str) -> tuple[str, str | None]:
    """The client as typed: (the platform's key, what to show of it). A CIF is itself; a CNP (control digit
    checked) becomes its person key, shown masked; a person key is taken as it is (shown from the read model).
    Refusals are the platform's `cif_*` codes (`InvalidTaxId`)."""
    text = "".join(str(raw or "").split()).upper()
    if is_person_key(text):
        return text, None
    tax_id = parse_tax_id(raw)
    if tax_id.kind == "cnp":
        return deps.pii.key_of(tax_id.value), mask_cnp(tax_id.value)
    return tax_id.value, tax_id.value


def echo(raw: str) -> str:
    """A refused item's client as the answer repeats it: whatever looks like a CNP masked, so a mistyped CNP is not
    sent back (or kept in a browser's session) in clear."""
    text = "".join(str(raw or "").split())
    return mask_cnp(text) if len(text) >= 13 and text.isdigit() else str(raw or "")[:20]


def _validate(deps: Deps, item: NewInvitation) -> NewInvitation:
    key, shown = client_of(deps, item.client_cif)
    return NewInvitation(client_cif=key, client_tax_id=shown, name=domain.normalize_name(item.name),
                         email=domain.normalize_email(item.email), phone=domain.normalize_phone(item.phone),
                         locale=item.locale if item.locale in ("ro", "en") else "ro")


async def send_invitations(deps: Deps, user: Principal, firm_cif: str, items: list[NewInvitation]) -> BulkResult:
    """Invite discovered clients, one or many. Each item commits on its own: a bad item is reported with its
    error and leaves nothing behind; the good ones are sent."""
    firm_cif = parse_company_id(firm_cif)
    if not items:
        raise AppError("Send at least one invitation.", code="validation_error", status=422)
    if len(items) > deps.max_bulk:
        raise AppError(f"At most {deps.max_bulk} invitations per request.", code="too_many_items", status=422)
    async with deps.uow() as uow:
        await _check_firm(uow, user, firm_cif)
        discovered = await repo.discovered_clients(uow.session, firm_cif)
        masks = await repo.masked_cnps(uow.session, discovered)
    result = BulkResult()
    seen: set[str] = set()
    for index, raw in enumerate(items):
        try:
            item = _validate(deps, raw)
        except InvalidInput as exc:
            result.items.append(ItemResult(index, echo(raw.client_cif), False, error=_err(
                exc.code, exc.message, field=exc.field)))
            continue
        except InvalidTaxId as exc:
            result.items.append(ItemResult(index, echo(raw.client_cif), False, error=_err(
                exc.code, exc.message, field="cif")))
            continue
        cif = item.client_cif
        if cif == firm_cif:
            result.items.append(ItemResult(index, cif, False, error=_err(
                "cannot_invite_self", "A firm cannot invite itself.", field="client_cif")))
            continue
        if cif not in discovered:
            # a CNP the firm's certificate does not list is answered as typed (masked), not with its key: the API
            # must not map arbitrary CNPs to the platform's keys for anyone who asks (nor say, as a duplicate would,
            # which key a CNP typed beside it has)
            named = item.client_tax_id or cif
            result.items.append(ItemResult(index, named, False, error=_err(
                "client_not_discovered", f"The firm's e-Factura authorization has no SPV rights on {named}: only "
                "discovered clients can be invited (a new SPV enrolment takes about a day to appear).",
                field="client_cif")))
            continue
        if cif in seen:
            result.items.append(ItemResult(index, cif, False, error=_err(
                "duplicate_in_request", f"Client {cif} appears more than once in this request.", field="client_cif")))
            continue
        seen.add(cif)
        if item.client_tax_id is None:
            item.client_tax_id = masks.get(cif)
        result.items.append(await _send_one(deps, user, firm_cif, item, index))
    return result


async def _send_one(deps: Deps, user: Principal, firm_cif: str, item: NewInvitation, index: int) -> ItemResult:
    now = deps.clock.now()
    async with deps.uow() as uow:
        existing = await repo.open_or_accepted(uow.session, firm_cif, item.client_cif)
        if existing is not None:
            st = status_of(existing, now)
            if st == Status.ACCEPTED:
                return ItemResult(index, item.client_cif, False, error=_err(
                    "already_collaborating", f"Client {item.client_cif} already accepted an invitation from this "
                    "firm.", invitation_id=existing.id))
            if st in domain.OPEN:
                return ItemResult(index, item.client_cif, False, error=_err(
                    "already_invited", f"Client {item.client_cif} already has an open invitation ({st.value}); "
                    "resend or revoke it instead.", invitation_id=existing.id, status=st.value))
            # pending but past expiry: mark it expired now so the new one can take its place
            await expire(uow, existing, now)
        inv_id = str(uuid.uuid4())
        nonce = domain.new_nonce()
        token = domain.derive_token(deps.token_key, inv_id, nonce)
        await repo.insert_invitation(uow.session, {
            "id": inv_id, "firm_cif": firm_cif, "client_cif": item.client_cif, "client_tax_id": item.client_tax_id,
            "name": item.name,
            "email": item.email, "phone": item.phone, "locale": item.locale, "status": Status.PENDING.value,
            "token_nonce": nonce, "token_hash": domain.token_hash(token), "created_by": user.user_id,
            "created_at": now, "sent_at": now, "expires_at": domain.expires_at(now), "send_count": 1,
            "updated_at": now})
        inv = await repo.get(uow.session, inv_id)
        assert inv is not None
        names = await repo.company_names(uow.session, [firm_cif, item.client_cif])
        uow.publish(sent_event(inv, names, resent=False))
        if not await repo.commit_unique(uow):  # a concurrent request invited the same client first
            return ItemResult(index, item.client_cif, False, error=_err(
                "already_invited", f"Client {item.client_cif} already has an open invitation."))
        return ItemResult(index, item.client_cif, True, invitation=view(inv, now, names))


async def _firm_invitation(uow: SqlUnitOfWork, user: Principal, invitation_id: str) -> Invitation:
    inv = await repo.get(uow.session, invitation_id, for_update=True)
    if inv is None:
        raise NotFound("No such invitation.", code="invitation_not_found")
    await _require_firm_manager(uow, user, inv.firm_cif)
    return inv


async def resend(deps: Deps, user: Principal, invitation_id: str, *, name: str | None = None,
                 email: str | None = None, phone: str | None = None) -> dict[str, Any]:
    """A new link (the old one stops working) and a new 15-day expiry; contact details may be corrected."""
    now = deps.clock.now()
    async with deps.uow() as uow:
        inv = await _firm_invitation(uow, user, invitation_id)
        st = status_of(inv, now)
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
        if inv.client_tax_id is None and is_person_key(inv.client_cif):
            masked = (await repo.masked_cnps(uow.session, [inv.client_cif])).get(inv.client_cif)
            if masked is not None:
                changes["client_tax_id"] = masked
        nonce = domain.new_nonce()
        token = domain.derive_token(deps.token_key, inv.id, nonce)
        await repo.set_fields(uow.session, inv.id, **changes, status=Status.PENDING.value, token_nonce=nonce,
                              token_hash=domain.token_hash(token), sent_at=now, expires_at=domain.expires_at(now),
                              send_count=inv.send_count + 1, expired_at=None, updated_at=now)
        fresh = await repo.get(uow.session, inv.id)
        assert fresh is not None
        names = await repo.company_names(uow.session, [inv.firm_cif, inv.client_cif])
        uow.publish(sent_event(fresh, names, resent=True))
        if not await repo.commit_unique(uow):
            raise Conflict("The client already has another open invitation from this firm.",
                           code="already_invited")
        return view(fresh, now, names)


async def revoke(deps: Deps, user: Principal, invitation_id: str) -> dict[str, Any]:
    now = deps.clock.now()
    async with deps.uow() as uow:
        inv = await _firm_invitation(uow, user, invitation_id)
        if inv.status not in (Status.PENDING, Status.CLAIMED):
            raise Conflict(f"This invitation is {inv.status}; only a pending or claimed invitation can be "
                           "revoked.", code="invitation_not_revocable", details={"status": inv.status})
        await repo.set_fields(uow.session, inv.id, status=Status.REVOKED.value, revoked_at=now,
                              revoked_by=user.user_id, updated_at=now)
        names = await repo.company_names(uow.session, [inv.firm_cif, inv.client_cif])
        uow.publish(InvitationRevoked(**event_base(inv, names), revoked_by=user.user_id,
                                      claimed_by=inv.claimed_by))
        await uow.commit()
        fresh = await repo.get(uow.session, inv.id)
        assert fresh is not None
        return view(fresh, now, names)


async def list_for_firm(deps: Deps, user: Principal, firm_cif: str, status: str | None = None, *, limit: int = 50,
                        cursor: str | None = None) -> dict[str, Any]:
    """One page of the firm's invitations, newest first; `cursor` is the `next_cursor` of the previous page."""
    firm_cif = parse_company_id(firm_cif)
    after = decode_time_cursor(cursor) if cursor else None
    now = deps.clock.now()
    async with deps.uow() as uow:
        await require_access(uow.session, access_grants, user.user_id, firm_cif)
        rows = await repo.list_for_firm(uow.session, firm_cif, now=now, status=status, limit=limit + 1, after=after)
        more, rows = len(rows) > limit, rows[:limit]
        names = await repo.company_names(uow.session, [firm_cif] + [r.client_cif for r in rows])
    nxt = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return {"items": [view(r, now, names) for r in rows], "next_cursor": nxt}


async def candidates(deps: Deps, user: Principal, firm_cif: str) -> dict[str, Any]:
    """The firm's discovered clients with the state of their latest invitation (what to invite next), and
    which precondition is missing, if any."""
    firm_cif = parse_company_id(firm_cif)
    now = deps.clock.now()
    async with deps.uow() as uow:
        await require_access(uow.session, access_grants, user.user_id, firm_cif)
        firm = await repo.company(uow.session, firm_cif)
        efactura = await repo.has_active_efactura(uow.session, firm_cif)
        clients = sorted(await repo.discovered_clients(uow.session, firm_cif))
        latest = await repo.latest_per_client(uow.session, firm_cif)
        names = await repo.company_names(uow.session, clients + [firm_cif])
        masks = await repo.masked_cnps(uow.session, clients)
    missing = []
    if firm is None or not firm.provides_accounting_services:
        missing.append("accounting_services_flag")
    if not efactura:
        missing.append("efactura_authorization")
    out = []
    for cif in clients:
        inv = latest.get(cif)
        out.append({"client_cif": cif, **client_identity(cif, masks.get(cif)), "client_name": names.get(cif),
                    "invitation": view(inv, now, names) if inv is not None else None})
    return {"firm_cif": firm_cif, "firm_name": names.get(firm_cif), "missing": missing, "clients": out}


async def get_for_user(deps: Deps, user: Principal, invitation_id: str) -> dict[str, Any]:
    now = deps.clock.now()
    async with deps.uow() as uow:
        inv = await repo.get(uow.session, invitation_id)
        if inv is None:
            raise NotFound("No such invitation.", code="invitation_not_found")
        if inv.claimed_by != user.user_id:
            try:
                await require_access(uow.session, access_grants, user.user_id, inv.firm_cif)
            except Forbidden:
                # the client's own verified owners and administrators, who answer it
                await require_grant(uow.session, access_grants, user.user_id, inv.client_cif, roles=MANAGERS,
                                    direct_only=True)
        names = await repo.company_names(uow.session, [inv.firm_cif, inv.client_cif])
    return view(inv, now, names)
