"""Entitlements of many CIFs are read in a fixed number of statements, whatever the number of CIFs (a connection's
change can touch hundreds of clients), and each CIF gets the snapshot its own facts give."""
from __future__ import annotations

from typing import Any

from pfkit import CLIENTS_A, FIRM_A, OTHERS, Env
from spvhub_common.events.invitations import InvitationAccepted, InvitationClaimed, InvitationSent
from spvhub_portfolio import handlers
from spvhub_portfolio.adapters.orm import entitlements_published
from sqlalchemy import event, select


async def _firm_with_two_clients(env: Env) -> None:
    """Firm A's certificate has rights on A and its 39 clients; two of them collaborate, the second may file."""
    from datetime import timedelta
    await env.register("fa", FIRM_A)
    await env.admin("/__admin/invoices", {"seller": FIRM_A, "buyer": CLIENTS_A[0]})  # lists carry the inventory
    await env.connect("conn-a", "firm_a", FIRM_A, "fa")
    now = env.deps.clock.now()
    for i, client in enumerate(CLIENTS_A[:2]):
        await env.handle(InvitationSent(invitation_id=f"inv{i}", firm_cif=FIRM_A, client_cif=client, email="c@x.ro",
                                        name="Client Rep", expires_at=now + timedelta(days=15)))
        await env.handle(InvitationClaimed(invitation_id=f"inv{i}", firm_cif=FIRM_A, client_cif=client,
                                           user_id=f"cl{i}"))
        await env.handle(InvitationAccepted(invitation_id=f"inv{i}", firm_cif=FIRM_A, client_cif=client,
                                            user_id=f"cl{i}"))
    r = await env.api.patch(f"/api/portfolio/companies/{CLIENTS_A[1]}/collaborations/{FIRM_A}",
                            json={"may_file": True}, headers=env.headers("cl1"))
    assert r.status_code == 200, r.text


async def _reads_of(env: Env, cifs: list[str]) -> int:
    """How many SELECTs one `sync_entitlements` over `cifs` runs."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)
    event.listen(env.runtime.engine.sync_engine, "before_cursor_execute", count)
    try:
        async with env.runtime.uow() as uow:
            await handlers.sync_entitlements(uow, cifs)
            await uow.commit()
    finally:
        event.remove(env.runtime.engine.sync_engine, "before_cursor_execute", count)
    return len(seen)


async def test_many_cifs_cost_the_reads_of_one(env: Env) -> None:
    await _firm_with_two_clients(env)
    every = [FIRM_A, *CLIENTS_A, *OTHERS]
    async with env.runtime.uow() as uow:  # everything published once, so the runs below only read
        await handlers.sync_entitlements(uow, every)
        await uow.commit()
    one = await _reads_of(env, [CLIENTS_A[5]])
    assert one == await _reads_of(env, every) == 4  # rights, connections, collaborations, published

    async with env.runtime.uow() as uow:
        rows = dict((await uow.session.execute(
            select(entitlements_published.c.cif, entitlements_published.c.connections))).all())
    own = {"connection_id": "conn-a", "holder_cif": FIRM_A, "services": ["efactura", "etransport"]}
    assert rows[FIRM_A] == [{**own, "may_file": True}]
    assert rows[CLIENTS_A[0]] == [{**own, "may_file": False}]
    assert rows[CLIENTS_A[1]] == [{**own, "may_file": True}]
    assert all(rows[c] == [] for c in [*CLIENTS_A[2:], *OTHERS])
