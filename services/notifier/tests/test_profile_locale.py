"""One language per user: the notifier follows auth's profile locale (`auth.profile-updated`) for the inbox and the
e-mails, and no longer takes a language of its own in the preferences."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
from ntfkit import NTF_MIGRATIONS, Stack, _settings
from spvhub_common.clock import ManualClock
from spvhub_common.events import encode, to_envelope
from spvhub_common.events.auth import ProfileUpdated, TokenExpiring, UserRegistered
from spvhub_common.events.portfolio import AccessChanged, CompanyRegistered
from spvhub_common.migrate import upgrade_async
from spvhub_common.outbox import KafkaPublisher
from spvhub_devtools.devmail import DevMail
from spvhub_devtools.testtokens import TokenMinter
from spvhub_notifier.adapters.orm import user_settings, users
from spvhub_notifier.bootstrap import build as build_notifier
from spvhub_notifier.settings import Settings
from sqlalchemy import select
from test_kafka_flow import eventually

CIF = "22222220"
T = datetime(2025, 4, 1, 10, 0, tzinfo=UTC)
NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def expiring(days: int) -> TokenExpiring:
    return TokenExpiring(connection_id="c1", company_cif=CIF, user_id="ana", must_act_by=T, days_left=days)


async def ana(st: Stack, locale: str = "ro") -> None:
    for ev in (CompanyRegistered(cif=CIF, name="Firma X SRL"),
               UserRegistered(user_id="ana", email="ana@firmax.ro", name="Ana Popescu", locale=locale)):
        await st.feed(ev, consumer="notifier.read-models")
    await st.feed(AccessChanged(cif=CIF, user_id="ana", role="owner", granted=True),
                  consumer="notifier.access-read-model")


async def rows(st: Stack, table: Any) -> list[dict[str, Any]]:
    async with st.ntf.sessions() as s:
        return [dict(r) for r in (await s.execute(select(table).order_by(table.c.user_id))).mappings()]


async def test_the_language_is_refused_in_the_preferences_and_nothing_changes(stack: Stack) -> None:
    st = stack
    await ana(st)
    h = st.h("ana")
    before = (await st.notifier.get("/api/notifier/preferences", headers=h)).json()
    assert before["locale"] == "ro" and before["locales"] == ["ro", "en"] and "locale_chosen" not in before
    people, settings = await rows(st, users), await rows(st, user_settings)
    for body in ({"locale": "en"}, {"locale": "ro"}, {"locale": "xx"},
                 {"locale": "en", "email": {"invoice_digest": False},
                  "companies": [{"cif": CIF, "invoice_digest": False}]}):
        r = await st.notifier.put("/api/notifier/preferences", headers=h, json=body)
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["code"] == "locale_is_profile_setting"
        assert "profilului" in err["message"] and "PATCH /api/auth/me" in err["message"]  # Romanian by default
    en = await st.notifier.put("/api/notifier/preferences", headers={**h, "Accept-Language": "en"},
                               json={"locale": "en"})
    assert en.status_code == 422 and "your profile" in en.json()["error"]["message"]
    # no side effect: the other settings sent along were not written, the language is untouched
    assert (await st.notifier.get("/api/notifier/preferences", headers=h)).json() == before
    assert await rows(st, users) == people and await rows(st, user_settings) == settings == []
    # the other preferences still change as before
    ok = await st.notifier.put("/api/notifier/preferences", headers=h, json={"email": {"invoice_digest": False}})
    assert ok.status_code == 200 and ok.json()["email"]["invoice_digest"] is False and ok.json()["locale"] == "ro"


async def test_a_profile_change_switches_inbox_and_email_language(stack: Stack) -> None:
    st = stack
    await ana(st)
    await st.feed(expiring(14))
    await st.send_all()
    assert st.mails("ana@firmax.ro")[0]["subject"] == "Autorizarea SPV pentru Firma X SRL expiră în 14 zile"

    change = await st.feed(ProfileUpdated(user_id="ana", name="Ana Ionescu", locale="en", updated_at=NOW),
                           consumer="notifier.read-models")
    await st.feed(change, consumer="notifier.read-models")  # redelivery
    await st.feed(change, consumer="notifier.read-models", skip_inbox=True)  # replay past the inbox: same row
    [row] = await rows(st, users)
    assert (row["email"], row["name"], row["locale"]) == ("ana@firmax.ro", "Ana Ionescu", "en")
    # the token still says Romanian; the profile's language wins, for old items too
    h = st.h("ana", locale="ro")
    inbox = (await st.notifier.get("/api/notifier/notifications", headers=h)).json()
    assert inbox["locale"] == "en" and inbox["items"][0]["title"] == "SPV authorization expires in 14 days"
    assert (await st.notifier.get("/api/notifier/preferences", headers=h)).json()["locale"] == "en"
    await st.feed(expiring(7))
    await st.send_all()
    mails = st.mails("ana@firmax.ro")
    assert len(mails) == 2 and mails[-1]["subject"] == "The SPV authorization of Firma X SRL expires in 7 days"
    assert "Ana Ionescu" in mails[-1]["text"]
    # an unsupported language is normalized to the default, like at registration
    await st.feed(ProfileUpdated(user_id="ana", name="Ana Ionescu", locale="de", updated_at=NOW),
                  consumer="notifier.read-models")
    assert (await rows(st, users))[0]["locale"] == "ro"


async def test_a_profile_change_read_before_the_registration_is_kept(stack: Stack) -> None:
    st = stack
    await st.feed(ProfileUpdated(user_id="ana", name="Ana Ionescu", locale="en", updated_at=NOW),
                  consumer="notifier.read-models")
    await ana(st, locale="ro")  # the (older) registration arrives afterwards, from its own topic
    [row] = await rows(st, users)
    assert (row["email"], row["name"], row["locale"]) == ("ana@firmax.ro", "Ana Ionescu", "en")
    await st.feed(expiring(7))
    await st.send_all()
    assert st.mails("ana@firmax.ro")[0]["subject"] == "The SPV authorization of Firma X SRL expires in 7 days"


async def test_profile_change_over_kafka_reaches_the_next_email(fresh_database: str, kafka_up: str,
                                                                 topic_prefix: str) -> None:
    """The real consumers (both groups), relay and sender job against Kafka and PostgreSQL."""
    mail = DevMail().start()
    s = _settings(Settings, "notifier", fresh_database, smtp_port=mail.smtp_port, email_send_interval=0.2,
                  email_retry_base=0.1, email_retry_max=0.5, kafka_topic_prefix=topic_prefix,
                  public_base_url="https://spv.example.ro")
    await upgrade_async(s, NTF_MIGRATIONS)
    minter = TokenMinter()
    app, rt = build_notifier(s, clock=ManualClock(NOW))
    app.state.jwks = minter.verifier()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notifier")
    producer = KafkaPublisher(kafka_up, "test-producer")
    await producer.start()

    async def publish(ev: Any, source: str) -> None:
        await producer.send(topic_prefix + ev.topic, ev.partition_key().encode(), encode(to_envelope(ev, source)), [])

    def mails() -> Any:
        return asyncio.sleep(0, mail.store.list("ana@firmax.ro"))

    try:
        await publish(CompanyRegistered(cif=CIF, name="Firma X SRL"), "portfolio")
        await publish(AccessChanged(cif=CIF, user_id="ana", role="owner", granted=True), "portfolio")
        await publish(UserRegistered(user_id="ana", email="ana@firmax.ro", name="Ana Popescu"), "auth")
        await rt.start()
        h = minter.headers("ana")

        async def known() -> bool:
            r = await client.get("/api/notifier/preferences", headers=h)
            # access and company name come through two consumer groups: wait for both
            return r.status_code == 200 and [c["name"] for c in r.json()["companies"]] == ["Firma X SRL"]
        await eventually(known)
        await publish(expiring(14), "auth")
        first = await eventually(mails)
        assert first[0]["subject"] == "Autorizarea SPV pentru Firma X SRL expiră în 14 zile"

        await publish(ProfileUpdated(user_id="ana", name="Ana Popescu", locale="en", updated_at=NOW), "auth")

        async def english() -> bool:
            r = await client.get("/api/notifier/preferences", headers=h)
            return r.json()["locale"] == "en"
        await eventually(english)
        await publish(expiring(7), "auth")
        await eventually(lambda: asyncio.sleep(0, len(mail.store.list("ana@firmax.ro")) == 2))
        last = mail.store.list("ana@firmax.ro")[-1]
        assert last["subject"] == "The SPV authorization of Firma X SRL expires in 7 days"
        items = (await client.get("/api/notifier/notifications", headers=h)).json()["items"]
        assert [i["title"] for i in items] == ["SPV authorization expires in 7 days",
                                               "SPV authorization expires in 14 days"]
    finally:
        await producer.stop()
        await rt.stop()
        await client.aclose()
        await rt.engine.dispose()
        mail.stop()
