"""Upgrading a database of the time before proof of control: memberships backed by an authorization with rights on
the company become verified, every other one unverified, and the service publishes access and entitlements again."""
from __future__ import annotations

import asyncio

from pfkit import CLIENTS_A, FIRM_A, FIRM_B, MIGRATIONS, make_env
from spvhub_common.db import create_engine
from spvhub_common.migrate import alembic_config
from spvhub_devtools.testing import make_settings
from spvhub_portfolio import jobs
from sqlalchemy import text


async def test_existing_memberships_migrate_to_verified_only_where_an_authorization_backs_them(
        fresh_database: str, topic_prefix: str, kafka_up: str) -> None:
    from alembic import command
    settings = make_settings("portfolio", database=fresh_database)
    await asyncio.to_thread(command.upgrade, alembic_config(settings, MIGRATIONS), "0002")
    engine = create_engine(settings)
    try:
        async with engine.begin() as c:
            for cif in (FIRM_A, FIRM_B, CLIENTS_A[0]):
                await c.execute(text("INSERT INTO companies (cif, name) VALUES (:c, 'X')"), {"c": cif})
            # the firm's owner authorized with rights on the firm; B's owner registered only; a client joined
            # through a link and a firm user reached it through an active collaboration
            await c.execute(text("INSERT INTO memberships (cif, user_id, role) VALUES (:a, 'owner-a', 'owner'), "
                                 "(:a, 'member-a', 'member'), (:b, 'owner-b', 'owner'), (:cl, 'client', 'owner')"),
                            {"a": FIRM_A, "b": FIRM_B, "cl": CLIENTS_A[0]})
            await c.execute(text("INSERT INTO connections (connection_id, holder_cif, user_id, status) "
                                 "VALUES ('conn-a', :a, 'owner-a', 'active')"), {"a": FIRM_A})
            await c.execute(text("INSERT INTO connection_rights (connection_id, cif, discovered_at, confirmed_at) "
                                 "VALUES ('conn-a', :a, now(), now()), ('conn-a', :cl, now(), now())"),
                            {"a": FIRM_A, "cl": CLIENTS_A[0]})
            await c.execute(text("INSERT INTO collaborations (id, firm_cif, client_cif, status, created_at) "
                                 "VALUES ('col', :a, :cl, 'active', now())"), {"a": FIRM_A, "cl": CLIENTS_A[0]})
            # what the service had published before (every grant)
            await c.execute(text("INSERT INTO access_published (user_id, cif, role, via_firm_cif) VALUES "
                                 "('owner-a', :a, 'owner', NULL), ('member-a', :a, 'member', NULL), "
                                 "('owner-b', :b, 'owner', NULL), ('client', :cl, 'owner', NULL), "
                                 "('owner-a', :cl, 'accountant', :a), ('member-a', :cl, 'accountant', :a)"),
                            {"a": FIRM_A, "b": FIRM_B, "cl": CLIENTS_A[0]})
    finally:
        await engine.dispose()
    env = await make_env(fresh_database, topic_prefix)  # the service's own start: migrations to head
    try:
        async with env.runtime.engine.connect() as c:
            rows = (await c.execute(text("SELECT cif, user_id, verified_via FROM memberships"))).all()
        verified = {(r.cif, r.user_id): r.verified_via for r in rows}
        assert verified == {(FIRM_A, "owner-a"): "migration", (FIRM_A, "member-a"): "migration",
                            (FIRM_B, "owner-b"): None, (CLIENTS_A[0], "client"): None}
        # the service then publishes again what it had published, with verification, and the entitlements
        assert await jobs.reconcile(env.runtime) > 0
        access = {(d["user_id"], d["cif"]): (d["verified"], d["can_file"])
                  for _, d in await env.events("portfolio.access-changed") if d["granted"]}
        assert access[("owner-a", FIRM_A)] == (True, True)
        assert access[("owner-b", FIRM_B)] == (False, False)
        assert access[("owner-a", CLIENTS_A[0])] == (True, False)  # a verified firm user reaches the client
        assert access[("client", CLIENTS_A[0])] == (False, False)
        ent = {d["cif"]: [c["connection_id"] for c in d["connections"]]
               for _, d in await env.events("portfolio.entitlements-changed")}
        assert ent == {FIRM_A: ["conn-a"], CLIENTS_A[0]: ["conn-a"]}
        assert await jobs.reconcile(env.runtime) == 0  # nothing left to publish
    finally:
        await env.api.aclose()
        await env.emulator.aclose()
        await env.runtime.engine.dispose()
