"""The account lifecycle end to end across auth and the notifier, on the real PostgreSQL and a real SMTP server
(the capture): the e-mail is read back from the capture and its link used. E-mail verification and resend,
password reset by e-mail, change of password, change of e-mail with re-verification, the list of sessions and
revoking one. Every refusal changes nothing; no answer tells whether an address has an account; the tokens
never reach the outbox (Kafka) or the notifier's database."""
from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from spvhub_auth.adapters.orm import account_tokens, outbox, refresh_tokens, users
from spvhub_common.db import drop_database, ensure_database
from spvhub_common.events import decode
from spvhub_common.events.auth import AccountEmailRequested, EmailVerified
from spvhub_common.inbox import claim
from spvhub_common.migrate import upgrade_async
from spvhub_devtools.devmail import DevMail
from spvhub_devtools.testing import make_settings
from spvhub_notifier import handlers as ntf
from spvhub_notifier.adapters.account_links import HttpAccountLinks
from spvhub_notifier.adapters.orm import email_outbox
from spvhub_notifier.adapters.orm import users as ntf_users
from spvhub_notifier.bootstrap import build as build_notifier
from spvhub_notifier.settings import Settings as NtfSettings
from sqlalchemy import func, select

NTF_MIGRATIONS = Path(__file__).resolve().parents[2] / "notifier" / "spvhub_notifier" / "migrations"
PW = "correct horse 1"


class Mailroom:
    """The notifier in-process on its own database, fed what auth published (its outbox, as the relay and Kafka
    would), fetching links from auth's internal endpoint, sending through a real SMTP server to the capture."""

    def __init__(self, h: Any, app: Any, rt: Any, mail: DevMail) -> None:
        self.h, self.app, self.rt, self.mail = h, app, rt, mail
        self.relayed: set[int] = set()

    async def deliver(self) -> None:
        async with self.h.runtime.uow() as uow:
            rows = (await uow.session.execute(select(outbox.c.seq, outbox.c.payload).order_by(outbox.c.seq))).all()
        for r in rows:
            if r.seq in self.relayed:
                continue
            self.relayed.add(r.seq)
            env, ev = decode(bytes(r.payload))
            if type(ev) not in ntf.EVENT_HANDLERS:
                continue
            async with self.rt.uow() as uow:
                if await claim(uow.session, "test", env.id):
                    await ntf.EVENT_HANDLERS[type(ev)](ev, env, uow, self.app.state.deps)
                await uow.commit()
        for _ in range(20):
            await ntf.send_due_emails(self.app.state.deps)
            async with self.rt.sessions() as s:
                if not (await s.execute(select(email_outbox.c.id).where(
                        email_outbox.c.status.in_(["pending", "sending"])))).first():
                    return

    def mails(self, to: str) -> list[dict[str, Any]]:
        return self.mail.store.list(to)

    def token(self, to: str, path: str = "verify-email") -> str:
        mail = self.mails(to)[-1]
        m = re.search(rf"https://spvhub\.test/{path}\?token=([A-Za-z0-9_-]+)", mail["text"])
        assert m, mail["text"]
        assert m.group(0) in mail["html"]
        self.h.secrets.add(m.group(1))
        return m.group(1)

    async def outbox_rows(self) -> list[Any]:
        async with self.rt.sessions() as s:
            return list((await s.execute(select(email_outbox))).mappings())


@pytest.fixture
async def mailroom(harness: Any, topic_prefix: str) -> Any:
    db = f"t_{uuid.uuid4().hex[:12]}"
    mail = DevMail().start()
    base = make_settings(service="notifier", database=db).model_dump()
    base.pop("service_name", None)
    base.update(smtp_port=mail.smtp_port, kafka_topic_prefix=topic_prefix, email_retry_base=0.05,
                email_retry_max=0.2)
    settings = NtfSettings(**base)
    await ensure_database(settings)
    await upgrade_async(settings, NTF_MIGRATIONS)
    auth_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=harness.app), base_url="http://auth")
    app, rt = build_notifier(settings, account_links=HttpAccountLinks("http://auth", "dev-service-token",
                                                                      client=auth_client),
                             start_consumers=False, start_relay=False, start_jobs=False)
    yield Mailroom(harness, app, rt, mail)
    await auth_client.aclose()
    await rt.engine.dispose()
    mail.stop()
    await drop_database(settings, db)


async def _count(h: Any, table: Any, *where: Any) -> int:
    async with h.runtime.uow() as uow:
        return int((await uow.session.execute(select(func.count()).select_from(table).where(*where))).scalar() or 0)


async def _login(h: Any, email: str, password: str = PW, ua: str = "test") -> httpx.Response:
    return await h.client.post("/api/auth/login", json={"email": email, "password": password},
                               headers={"User-Agent": ua})


async def _no_token_left_auth(h: Any, mr: Mailroom, *tokens: str) -> None:
    payloads = b"".join(await h.outbox_payloads())
    rows = str(await mr.outbox_rows())
    for t in tokens:
        assert t.encode() not in payloads and t not in rows
    async with h.runtime.uow() as uow:
        stored = str((await uow.session.execute(select(account_tokens))).all())
    for t in tokens:
        assert t not in stored


async def test_signup_verification_link_single_use_and_resend(harness: Any, mailroom: Any) -> None:
    h, mr = harness, mailroom
    s = await h.signup(email="ana@example.ro")
    assert s["user"]["email_verified"] is False
    reg = (await h.events("auth.user-registered"))[0][1]
    assert reg.email_verified is False
    await mr.deliver()
    [mail] = mr.mails("ana@example.ro")
    assert mail["subject"] == "Confirmați adresa de e-mail a contului spvhub" and "Maria Ionescu" in mail["text"]
    first = mr.token("ana@example.ro")

    # resend: a new link, the first one stops working
    r = await h.client.post("/api/auth/email/verification/resend", json={"email": "ANA@example.ro"})
    assert r.status_code == 202
    await mr.deliver()
    assert len(mr.mails("ana@example.ro")) == 2
    second = mr.token("ana@example.ro")
    assert second != first
    old = await h.client.post("/api/auth/email/verify", json={"token": first})
    assert old.status_code == 400 and old.json()["error"]["code"] == "invalid_link"
    assert "Linkul nu mai este valabil" in old.json()["error"]["message"]
    assert not await h.events("auth.email-verified")

    ok = await h.client.post("/api/auth/email/verify", json={"token": second})
    assert ok.status_code == 200 and ok.json() == {"status": "verified", "email": "ana@example.ro",
                                                   "email_verified": True}
    assert (await h.client.get("/api/auth/me", headers=s["headers"])).json()["email_verified"] is True
    [(_, ev)] = await h.events("auth.email-verified")
    assert isinstance(ev, EmailVerified) and ev.user_id == s["user"]["id"] and ev.previous_email is None
    again = await h.client.post("/api/auth/email/verify", json={"token": second})
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_link"
    assert len(await h.events("auth.email-verified")) == 1
    # a verified address gets no further link, and the answer is the same
    r2 = await h.client.post("/api/auth/email/verification/resend", json={"email": "ana@example.ro"})
    assert r2.status_code == 202 and r2.json() == r.json()
    await mr.deliver()
    assert len(mr.mails("ana@example.ro")) == 2
    bogus = await h.client.post("/api/auth/email/verify", json={"token": "x" * 43})
    assert bogus.status_code == 400 and bogus.json()["error"]["code"] == "invalid_link"
    await _no_token_left_auth(h, mr, first, second)
    # the internal link endpoint is for services only, and says nothing of a used link
    rid = (await h.events("auth.account-email-requested"))[-1][1].request_id
    assert (await h.client.get(f"/internal/account-links/{rid}")).status_code == 401
    gone = await h.client.get(f"/internal/account-links/{rid}", headers={"X-Service-Token": "dev-service-token",
                                                                          "X-Service-Name": "notifier"})
    assert gone.status_code == 410 and second not in gone.text


async def test_requests_do_not_tell_whether_an_address_has_an_account(harness: Any, mailroom: Any) -> None:
    h, mr = harness, mailroom
    await h.signup(email="ion@example.ro")
    await mr.deliver()
    tokens_before = await _count(h, account_tokens)
    answers = []
    for path in ("/api/auth/password/forgot", "/api/auth/email/verification/resend"):
        for email in ("nobody@example.ro", "ion@example.ro", "not an address"):
            r = await h.client.post(path, json={"email": email})
            answers.append((r.status_code, r.json()))
    assert len({str(a) for a in answers}) == 1 and answers[0][0] == 202
    await mr.deliver()
    assert mr.mails("nobody@example.ro") == []
    assert [m["subject"] for m in mr.mails("ion@example.ro")] == [
        "Confirmați adresa de e-mail a contului spvhub", "Resetarea parolei contului spvhub",
        "Confirmați adresa de e-mail a contului spvhub"]
    assert await _count(h, account_tokens) == tokens_before + 2  # nothing for the unknown addresses
    # per address, over the limit: still the same 202, only no more e-mails
    for _ in range(6):
        r = await h.client.post("/api/auth/password/forgot", json={"email": "ion@example.ro"})
        assert (r.status_code, r.json()) == answers[0]
    resets = [e for _, e in await h.events("auth.account-email-requested") if e.kind == "password_reset"]
    assert len(resets) == 5
    # several links asked for before the e-mails went out: only the newest works, so only it is sent
    await mr.deliver()
    assert sum(m["subject"] == "Resetarea parolei contului spvhub" for m in mr.mails("ion@example.ro")) == 2


async def test_password_reset_by_email_ends_every_session(harness: Any, mailroom: Any) -> None:
    h, mr = harness, mailroom
    s = await h.signup(email="dan@example.ro", locale="en")
    other = (await _login(h, "dan@example.ro")).json()
    h.secrets.update({other["refresh_token"], other["access_token"]})
    r = await h.client.post("/api/auth/password/forgot", json={"email": "dan@example.ro"})
    assert r.status_code == 202
    await mr.deliver()
    mail = mr.mails("dan@example.ro")[-1]
    assert mail["subject"] == "Reset the password of your spvhub account"
    token = mr.token("dan@example.ro", "reset-password")

    weak = await h.client.post("/api/auth/password/reset", json={"token": token, "password": "short"})
    assert weak.status_code == 422 and weak.json()["error"]["code"] == "weak_password"
    bad = await h.client.post("/api/auth/password/reset", json={"token": "nope" * 10, "password": "new password 22"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_link"
    # nothing changed: the old password works, the sessions live, the link is still good
    assert (await _login(h, "dan@example.ro")).status_code == 200
    assert await _count(h, refresh_tokens, refresh_tokens.c.revoked_at.is_not(None)) == 0

    ok = await h.client.post("/api/auth/password/reset", json={"token": token, "password": "new password 22"})
    assert ok.status_code == 200 and ok.json()["status"] == "password_reset" and ok.json()["sessions_ended"] == 3
    h.secrets.add("new password 22")
    for rt in (s["refresh_token"], other["refresh_token"]):
        gone = await h.client.post("/api/auth/token/refresh", json={"refresh_token": rt})
        assert gone.status_code == 401 and gone.json()["error"]["code"] == "session_revoked"
    assert (await _login(h, "dan@example.ro")).status_code == 401
    assert (await _login(h, "dan@example.ro", "new password 22")).status_code == 200
    reuse = await h.client.post("/api/auth/password/reset", json={"token": token, "password": "third password 3"})
    assert reuse.status_code == 400 and reuse.json()["error"]["code"] == "invalid_link"
    # the link proved the address too; and the account is told its password changed
    assert len(await h.events("auth.email-verified")) == 1
    await mr.deliver()
    assert mr.mails("dan@example.ro")[-1]["subject"] == "The password of your spvhub account was changed"
    await _no_token_left_auth(h, mr, token)


async def test_change_password_keeps_this_session_only(harness: Any, mailroom: Any) -> None:
    h, mr = harness, mailroom
    s = await h.signup(email="eva@example.ro")
    other = (await _login(h, "eva@example.ro")).json()
    h.secrets.update({other["refresh_token"], other["access_token"]})
    wrong = await h.client.post("/api/auth/password/change", headers=s["headers"],
                                json={"current_password": "not it at all", "new_password": "brand new pass 1"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "wrong_password"
    assert wrong.json()["error"]["message"] == "Parola actuală este greșită."
    weak = await h.client.post("/api/auth/password/change", headers=s["headers"],
                               json={"current_password": PW, "new_password": "short"})
    assert weak.status_code == 422
    assert (await _login(h, "eva@example.ro")).status_code == 200  # unchanged
    assert await _count(h, refresh_tokens, refresh_tokens.c.revoked_at.is_not(None)) == 0

    ok = await h.client.post("/api/auth/password/change", headers=s["headers"],
                             json={"current_password": PW, "new_password": "brand new pass 1"})
    assert ok.status_code == 200 and ok.json()["sessions_ended"] == 2
    h.secrets.add("brand new pass 1")
    kept = await h.client.post("/api/auth/token/refresh", json={"refresh_token": s["refresh_token"]})
    assert kept.status_code == 200
    h.secrets.update({kept.json()["refresh_token"], kept.json()["access_token"]})
    ended = await h.client.post("/api/auth/token/refresh", json={"refresh_token": other["refresh_token"]})
    assert ended.status_code == 401
    assert (await _login(h, "eva@example.ro", "brand new pass 1")).status_code == 200
    await mr.deliver()
    assert mr.mails("eva@example.ro")[-1]["subject"] == "Parola contului spvhub a fost schimbată"


async def test_change_email_needs_the_new_address_confirmed(harness: Any, mailroom: Any) -> None:
    h, mr = harness, mailroom
    s = await h.signup(email="old@example.ro")
    await h.signup(email="taken@example.ro")
    await mr.deliver()
    wrong = await h.client.post("/api/auth/email/change", headers=s["headers"],
                                json={"new_email": "new@example.ro", "password": "wrong password"})
    assert wrong.status_code == 401
    bad = await h.client.post("/api/auth/email/change", headers=s["headers"],
                              json={"new_email": "no-at-sign", "password": PW})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_email"
    assert not [e for e in await h.events("auth.account-email-requested") if e[1].kind != "email_verification"]

    # an address another account uses: the same answer, no link to it (the old address is still told)
    taken = await h.client.post("/api/auth/email/change", headers=s["headers"],
                                json={"new_email": "taken@example.ro", "password": PW})
    assert taken.status_code == 202
    await mr.deliver()
    assert len(mr.mails("taken@example.ro")) == 1  # only its own sign-up e-mail

    r = await h.client.post("/api/auth/email/change", headers=s["headers"],
                            json={"new_email": "New@Example.ro", "password": PW})
    assert r.status_code == 202 and r.json()["pending_email"] == "new@example.ro"
    assert taken.json().keys() == r.json().keys()
    await mr.deliver()
    told = mr.mails("old@example.ro")[-1]
    assert told["subject"] == "S-a cerut schimbarea adresei de e-mail a contului spvhub"
    assert "new@example.ro" in told["text"] and "token=" not in told["text"]
    [confirm] = mr.mails("new@example.ro")
    assert confirm["subject"] == "Confirmați noua adresă de e-mail a contului spvhub"
    token = mr.token("new@example.ro")
    # nothing moves before the confirmation
    assert (await _login(h, "old@example.ro")).status_code == 200
    assert (await _login(h, "new@example.ro")).status_code == 401

    ok = await h.client.post("/api/auth/email/verify", json={"token": token})
    assert ok.status_code == 200 and ok.json()["email"] == "new@example.ro"
    assert (await _login(h, "new@example.ro")).status_code == 200
    assert (await _login(h, "old@example.ro")).status_code == 401
    me = (await h.client.get("/api/auth/me", headers=s["headers"])).json()
    assert me["email"] == "new@example.ro" and me["email_verified"] is True
    [(_, ev)] = await h.events("auth.email-verified")
    assert ev.email == "new@example.ro" and ev.previous_email == "old@example.ro"
    # the sign-up link of the old address no longer verifies anything
    reqs = [e for _, e in await h.events("auth.account-email-requested") if isinstance(e, AccountEmailRequested)]
    assert all(e.request_id is None or e.kind != "email_verification" or e.email != "new@example.ro" for e in reqs)
    # the notifier now writes to the new address
    await mr.deliver()
    async with mr.rt.sessions() as db:
        assert (await db.execute(select(ntf_users.c.email).where(
            ntf_users.c.user_id == s["user"]["id"]))).scalar() == "new@example.ro"
    async with h.runtime.uow() as uow:
        assert (await uow.session.execute(select(users.c.email).where(users.c.id == s["user"]["id"]))
                ).scalar() == "new@example.ro"
    await _no_token_left_auth(h, mr, token)


async def test_sessions_listed_and_revoked(harness: Any, mailroom: Any) -> None:
    h = harness
    s = await h.signup(email="gia@example.ro")
    phone = (await _login(h, "gia@example.ro", ua="Telefon/1.0")).json()
    h.secrets.update({phone["refresh_token"], phone["access_token"]})
    intruder = await h.signup(email="x@example.ro")
    listed = await h.client.get("/api/auth/sessions", headers=s["headers"])
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert len(items) == 2
    by_current = {i["current"]: i for i in items}
    assert by_current[False]["user_agent"] == "Telefon/1.0" and by_current[False]["address"]
    assert by_current[True]["created_at"] and by_current[True]["last_used_at"]
    # a refresh keeps the same session (one row, newer last use)
    rotated = (await h.client.post("/api/auth/token/refresh", json={"refresh_token": phone["refresh_token"]},
                                   headers={"User-Agent": "Telefon/1.1"})).json()
    h.secrets.update({rotated["refresh_token"], rotated["access_token"]})
    items = (await h.client.get("/api/auth/sessions", headers=s["headers"])).json()["items"]
    phone_row = next(i for i in items if not i["current"])
    assert len(items) == 2 and phone_row["user_agent"] == "Telefon/1.1"

    # another account cannot end it
    other = await h.client.post(f"/api/auth/sessions/{phone_row['id']}/revoke", headers=intruder["headers"])
    assert other.status_code == 404 and other.json()["error"]["code"] == "session_not_found"
    assert (await h.client.get("/api/auth/sessions", headers=s["headers"])).json()["items"][0]["id"]
    r = await h.client.post(f"/api/auth/sessions/{phone_row['id']}/revoke", headers=s["headers"])
    assert r.status_code == 204
    gone = await h.client.post("/api/auth/token/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert gone.status_code == 401
    items = (await h.client.get("/api/auth/sessions", headers=s["headers"])).json()["items"]
    assert [i["current"] for i in items] == [True]
    again = await h.client.post(f"/api/auth/sessions/{phone_row['id']}/revoke", headers=s["headers"])
    assert again.status_code == 404
