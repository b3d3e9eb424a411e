"""Notifications go to the people affected, no one else: about a connection, the holder company's own verified
people; access lost, exactly whom portfolio names; a collaboration's start and end, both companies' verified owners
and administrators; a join request, the owners who decide; a verification, the person verified; anything else
about a company's ANAF data, its verified users. Checked in the inbox and at the SMTP capture."""
from __future__ import annotations

from datetime import UTC, datetime

from ntfkit import Stack
from spvhub_common.events.auth import ReauthorizationRequired, TokenExpiring, TokenRefreshed, UserRegistered
from spvhub_common.events.efactura import InvoiceErrorReceived
from spvhub_common.events.portfolio import (
    AccessChanged,
    AccessLost,
    CollaborationEnded,
    CollaborationStarted,
    CompanyRegistered,
    JoinRequested,
    MembershipVerified,
)

HOLDER, FIRM, OTHER = "22222220", "11111110", "33333330"
T = datetime(2025, 4, 1, 10, 0, tzinfo=UTC)
USERS = {"ana": "ro", "dan": "en", "newbie": "ro", "acc": "ro", "ion": "ro", "fm": "ro", "other": "ro",
         "former": "ro"}


def addr(user: str) -> str:
    return f"{user}@example.ro"


async def people(st: Stack) -> None:
    for ev in (CompanyRegistered(cif=HOLDER, name="Firma X SRL"), CompanyRegistered(cif=FIRM, name="Contabil SRL"),
               CompanyRegistered(cif=OTHER, name="Alt Client SRL"),
               *(UserRegistered(user_id=u, email=addr(u), name=u.title(), locale=loc) for u, loc in USERS.items())):
        await st.feed(ev, consumer="notifier.read-models")
    grants = [  # (user, cif, role, verified, via_firm_cif)
        ("ana", HOLDER, "owner", True, None), ("dan", HOLDER, "admin", True, None),
        ("newbie", HOLDER, "owner", False, None), ("acc", HOLDER, "accountant", True, FIRM),
        ("ion", FIRM, "owner", True, None), ("acc", FIRM, "member", True, None), ("fm", FIRM, "admin", False, None),
        ("other", OTHER, "owner", True, None)]
    for user, cif, role, verified, via in grants:
        await st.feed(AccessChanged(cif=cif, user_id=user, role=role, granted=True, verified=verified,
                                    via_firm_cif=via), consumer="notifier.access-read-model")


async def told(st: Stack) -> dict[str, list[str]]:
    """Who got what: inbox kinds per user, and the e-mails checked to match them one for one."""
    await st.send_all()
    out: dict[str, list[str]] = {}
    for r in await st.inbox_rows():
        out.setdefault(r["user_id"], []).append(r["kind"])
    for user in USERS:
        assert len(st.mails(addr(user))) == len(out.get(user, [])), user
    return {u: sorted(k) for u, k in out.items()}


async def test_connection_notices_reach_only_the_holders_own_verified_people(stack: Stack):
    st = stack
    await people(st)
    # "former" authorized the connection once and has left the company
    await st.feed(TokenExpiring(connection_id="c1", company_cif=HOLDER, user_id="former", must_act_by=T, days_left=7))
    await st.feed(ReauthorizationRequired(connection_id="c1", company_cif=HOLDER, user_id="former", reason="revoked",
                                          message=""))
    await st.feed(TokenRefreshed(connection_id="c1", company_cif=HOLDER, access_expires_at=T, refresh_expires_at=T,
                                 after_warning=True))
    kinds = ["authorization_renewed", "reauthorization_required", "token_expiring"]
    assert await told(st) == {"ana": kinds, "dan": kinds}


async def test_a_revoke_tells_only_whom_portfolio_names(stack: Stack):
    """The holder revoked its connection: the holder's sync stops (its people are told); the other tenant whose
    company the certificate also covered keeps syncing through its own connection and hears nothing, even from an
    access-lost that names nobody."""
    st = stack
    await people(st)
    await st.feed(AccessLost(cif=OTHER, connection_id="c1", reason="connection_revoked", holder_cif=HOLDER,
                             notify_user_ids=[]))
    await st.feed(AccessLost(cif=HOLDER, connection_id="c1", reason="connection_revoked", holder_cif=HOLDER,
                             notify_user_ids=["ana", "dan"]))
    assert await told(st) == {"ana": ["access_lost"], "dan": ["access_lost"]}
    assert st.mails(addr("other")) == [] and st.mails(addr("acc")) == []
    assert [m["subject"] for m in st.mails(addr("ana"))] == ["spvhub nu mai are acces SPV pentru Firma X SRL"]


async def test_collaboration_start_and_end_reach_both_companies_managers(stack: Stack):
    st = stack
    await people(st)
    await st.feed(CollaborationStarted(firm_cif=FIRM, client_cif=HOLDER, may_file=False, accepted_by="ana"))
    await st.feed(CollaborationEnded(firm_cif=FIRM, client_cif=HOLDER, reason="ended_by_client"))
    # a pending collaboration closed with its declined invitation never started: the invitation notices tell it
    await st.feed(CollaborationEnded(firm_cif=FIRM, client_cif=OTHER, reason="invitation_declined"))
    both = ["collaboration_ended", "collaboration_started"]
    # not the firm's plain member, not its unverified admin, not the client's unverified owner or the accountant
    assert await told(st) == {"ana": both, "dan": both, "ion": both}
    ro = sorted(m["subject"] for m in st.mails(addr("ana")))
    assert ro == ["Colaborare începută: Contabil SRL pentru Firma X SRL",
                  "Colaborare încheiată: Contabil SRL și Firma X SRL"]
    started = next(m for m in st.mails(addr("ana")) if "începută" in m["subject"])
    assert "cu acordul companiei client" in started["text"] and "nu este permisă" in started["text"]
    ended = next(m for m in st.mails(addr("ana")) if "încheiată" in m["subject"])
    assert "s-a încheiat la cererea clientului" in ended["text"]
    en = sorted(m["subject"] for m in st.mails(addr("dan")))
    assert en == ["Collaboration ended: Contabil SRL and Firma X SRL",
                  "Collaboration started: Contabil SRL for Firma X SRL"]
    item = (await st.notifier.get("/api/notifier/notifications", headers=st.h("ion"))).json()["items"][0]
    assert item["url"].endswith(f"/companies/{HOLDER}")


async def test_join_request_and_verification(stack: Stack):
    st = stack
    await people(st)
    await st.feed(JoinRequested(cif=HOLDER, user_id="newbie", via="invitation", invitation_id="i1", firm_cif=FIRM,
                                notify_user_ids=["ana", "dan"]))
    await st.feed(MembershipVerified(cif=OTHER, user_id="other", role="owner", via="authorization"))
    assert await told(st) == {"ana": ["join_requested"], "dan": ["join_requested"], "other": ["company_verified"]}
    item = (await st.notifier.get("/api/notifier/notifications", headers=st.h("ana"))).json()["items"][0]
    assert item["title"] == "Cerere de acces pentru Firma X SRL"
    assert item["url"].endswith(f"/companies/{HOLDER}/members")
    mail = st.mails(addr("ana"))[0]
    assert "Newbie (newbie@example.ro)" in mail["text"] and "Contabil SRL" in mail["text"]
    assert st.mails(addr("dan"))[0]["subject"] == "Newbie asks to join Firma X SRL"
    verified = st.mails(addr("other"))[0]
    assert verified["subject"] == "Alt Client SRL este verificată în contul dumneavoastră"
    assert "autorizarea ANAF" in verified["text"]


async def test_other_company_notices_reach_verified_users_only(stack: Stack):
    st = stack
    await people(st)
    await st.feed(InvoiceErrorReceived(cif=HOLDER, message_id="3001", upload_index="5001", errors=["E: BR-RO-010"]))
    # the firm's accountant reaches the client within the collaboration (verified); the unverified owner does not
    assert await told(st) == {"ana": ["invoice_error"], "dan": ["invoice_error"], "acc": ["invoice_error"]}
