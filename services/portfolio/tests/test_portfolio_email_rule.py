"""A verified e-mail comes before any verified company: a proof of control (here an ANAF authorization with
rights) by a person whose e-mail auth announced as unverified is kept and applied when `auth.email-verified`
arrives; nothing is verified or published before. A late registration event does not undo the verification."""
from __future__ import annotations

from datetime import UTC, datetime

from pfkit import FIRM_A
from spvhub_common.events.auth import EmailVerified, UserRegistered
from spvhub_portfolio.adapters import repository as repo
from spvhub_portfolio.adapters.orm import pending_verifications
from sqlalchemy import select


async def _member(env, user: str, cif: str):  # type: ignore[no-untyped-def]
    async with env.runtime.uow() as uow:
        return await repo.direct_membership(uow.session, user, cif)


async def test_authorization_before_email_verification_waits_then_applies(env) -> None:  # type: ignore[no-untyped-def]
    await env.handle(UserRegistered(user_id="fa", email="fa@example.test", name="FA", email_verified=False))
    await env.register("fa", FIRM_A, verify=False)
    await env.connect("conn-a", "firm_a", FIRM_A, "fa")
    m = await _member(env, "fa", FIRM_A)
    assert m is not None and not m.verified
    assert not await env.events("portfolio.membership-verified")
    assert not [d for _, d in await env.events("portfolio.access-changed") if d.get("verified")]
    async with env.runtime.uow() as uow:
        pending = (await uow.session.execute(select(pending_verifications))).all()
    assert [(p.user_id, p.cif, p.via) for p in pending] == [("fa", FIRM_A, "authorization")]

    await env.handle(EmailVerified(user_id="fa", email="fa@example.test", verified_at=datetime.now(UTC)))
    m = await _member(env, "fa", FIRM_A)
    assert m is not None and m.verified and m.role == "owner"
    [(_, ev)] = await env.events("portfolio.membership-verified")
    assert ev["user_id"] == "fa" and ev["via"] == "authorization"
    async with env.runtime.uow() as uow:
        assert not (await uow.session.execute(select(pending_verifications))).all()
    # a registration event delivered late (another topic) does not make the e-mail unverified again
    await env.handle(UserRegistered(user_id="fa", email="fa@example.test", name="FA", email_verified=False))
    async with env.runtime.uow() as uow:
        assert not await repo.email_unverified(uow.session, "fa")


async def test_a_verified_email_verifies_at_once(env) -> None:  # type: ignore[no-untyped-def]
    await env.handle(UserRegistered(user_id="fa", email="fa@example.test", name="FA", email_verified=False))
    await env.handle(EmailVerified(user_id="fa", email="fa@example.test", verified_at=datetime.now(UTC)))
    await env.register("fa", FIRM_A, verify=False)
    await env.connect("conn-a", "firm_a", FIRM_A, "fa")
    m = await _member(env, "fa", FIRM_A)
    assert m is not None and m.verified
