"""Test kit of the submissions: invoice XML for scenario companies (valid, or breaking emulator rules),
access grants, and polling helpers."""
from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from typing import Any

from anaf_emulator.ubl import InvoiceSpec, Line, Party, render
from spvhub_common.access import apply_access_changed
from spvhub_common.events.portfolio import AccessChanged
from spvhub_efactura.adapters.orm import access_grants
from spvhub_efactura.submissions.repository import Submission


def invoice_xml(seller: str, buyer: str, number: str = "SPV-0001", issue: date = date(2026, 3, 9), *,
                seller_county: str = "CJ", customization_ok: bool = True, credit_note: bool = False) -> bytes:
    spec = InvoiceSpec(number=number, issue_date=issue, seller=Party(seller, "Vanzator SRL", county=seller_county),
                       buyer=Party(buyer, "Cumparator SRL"), credit_note=credit_note,
                       lines=[Line("Servicii", Decimal("2"), "H87", Decimal("150.00"), "S", Decimal("19"))])
    xml = render(spec)
    if not customization_ok:
        xml = xml.replace(b"CIUS-RO:1.0.1", b"CIUS-RO:0.9")
    return xml


async def grant_access(runtime: Any, user_id: str, cifs: list[str], *, role: str = "owner", verified: bool = True,
                       can_file: bool | None = None, via_firm_cif: str | None = None) -> None:
    """portfolio's access-changed as the consumer applies it (a verified owner may file by default)."""
    async with runtime.uow() as uow:
        for c in cifs:
            await apply_access_changed(uow.session, access_grants, AccessChanged(
                cif=c, user_id=user_id, role=role, granted=True, verified=verified, via_firm_cif=via_firm_cif,
                can_file=(verified and role in ("owner", "admin")) if can_file is None else can_file))
        await uow.commit()


async def drive(h: Any, submission_id: str, until: tuple[str, ...], rounds: int = 60,
                advance: float = 10.0, linked: bool = True) -> Submission:
    """Run the submissions worker (moving the emulator clock) until the submission reaches one of `until`."""
    svc = h.app.state.deps.submissions
    row: Submission | None = None
    for _ in range(rounds):
        await svc.tick()
        row = await svc.get(submission_id)
        assert row is not None
        if row.state in until and (row.state != "accepted" or row.sent_invoice_id or not linked):
            return row
        await h.admin("clock", {"advance_seconds": advance})
        await asyncio.sleep(0.05)
    raise AssertionError(f"submission stuck: {row}")


async def outbox_events(h: Any, topic: str) -> list[Any]:
    """The events the service put in its outbox under `topic` (a catalogue name without the run's prefix)."""
    from spvhub_common.events import decode
    from spvhub_efactura.adapters.orm import outbox
    from sqlalchemy import select

    async with h.runtime.sessions() as s:
        rows = (await s.execute(select(outbox.c.payload).where(outbox.c.topic == topic))).scalars().all()
    return [decode(p)[1] for p in rows]
