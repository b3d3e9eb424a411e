"""The invoice digest: downloaded invoices are not told one by one but gathered per company into one notice
(inbox and e-mail) per run of the digest job."""
from __future__ import annotations

import uuid
from collections import defaultdict

from spvhub_notifier.adapters import repository as repo
from spvhub_notifier.adapters.repository import DigestItem
from spvhub_notifier.domain import Notice
from spvhub_notifier.handlers.delivery import deliver, users_for_cif
from spvhub_notifier.handlers.deps import Deps

DIGEST_ITEMS_SHOWN = 10


async def run_digests(deps: Deps) -> int:
    """One digest per company for everything downloaded since the last one (inbox + e-mail per user)."""
    async with deps.uow() as uow:
        by_cif: dict[str, list[DigestItem]] = defaultdict(list)
        for item in await repo.undigested_items(uow.session):
            by_cif[item.cif].append(item)
        for cif, items in by_cif.items():
            digest_id = str(uuid.uuid4())
            await repo.mark_digested(uow.session, [i.source_event_id for i in items], digest_id)
            opted_out = await repo.digest_opted_out(uow.session, cif)
            recipients = [u for u in await users_for_cif(uow, cif) if u not in opted_out]
            received = sum(1 for i in items if i.params.get("direction") == "received")
            params = {"cif": cif, "company_name": await repo.company_name(uow.session, cif), "count": len(items),
                      "received": received, "sent": len(items) - received, "digest_id": digest_id,
                      "items": [i.params for i in items[:DIGEST_ITEMS_SHOWN]],
                      "more": max(0, len(items) - DIGEST_ITEMS_SHOWN)}
            await deliver(uow, Notice("invoice_digest", params, cif=cif, users=recipients), f"digest:{digest_id}")
        await uow.commit()
        return len(by_cif)
