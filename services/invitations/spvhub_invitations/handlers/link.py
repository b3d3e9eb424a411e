"""Internal: the current link of a pending invitation, for the notifier that renders the e-mail."""
from __future__ import annotations

from typing import Any

from spvhub_common.errors import NotFound

from spvhub_invitations import domain
from spvhub_invitations.adapters import repository as repo
from spvhub_invitations.domain import Status
from spvhub_invitations.handlers.deps import Deps
from spvhub_invitations.handlers.views import Gone, client_identity, status_of


async def link(deps: Deps, invitation_id: str) -> dict[str, Any]:
    """The current link of a pending invitation, re-derived (never stored); 410 once it cannot be used."""
    now = deps.clock.now()
    async with deps.uow() as uow:
        inv = await repo.get(uow.session, invitation_id)
        if inv is None:
            raise NotFound("No such invitation.", code="invitation_not_found")
        st = status_of(inv, now)
        if st != Status.PENDING:
            raise Gone(f"The invitation is {st.value}; its link must not be sent.", code="invitation_not_pending",
                       details={"status": st.value})
        names = await repo.company_names(uow.session, [inv.firm_cif, inv.client_cif])
    token = domain.derive_token(deps.token_key, inv.id, inv.token_nonce)
    base = deps.public_base_url.rstrip("/")
    return {"invitation_id": inv.id, "link": base + deps.join_path.format(token=token),
            "expires_at": inv.expires_at,
            "status": st.value, "email": inv.email, "name": inv.name, "locale": inv.locale,
            "firm_cif": inv.firm_cif, "firm_name": names.get(inv.firm_cif),
            "client_cif": inv.client_cif, **client_identity(inv.client_cif, inv.client_tax_id),
            "client_name": names.get(inv.client_cif)}
