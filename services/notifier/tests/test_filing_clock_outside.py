"""The filing clock's notices for what is no submission: a sent invoice found in the inbox, filed outside spvhub
after its deadline, and a draft close to its deadline. The company's people and its collaborating firm's are told
once each, with a link to a page that exists (the company's invoices, its submissions)."""
from __future__ import annotations

from datetime import UTC, date, datetime

from ntfkit import Stack
from spvhub_common.events.auth import UserRegistered
from spvhub_common.events.efactura import FiledLate, FilingDeadlineApproaching
from spvhub_common.events.portfolio import AccessChanged, CompanyRegistered
from spvhub_notifier.domain import action_url

CIF, FIRM = "22222220", "33333330"


def test_links_of_what_is_no_submission() -> None:
    assert action_url("https://a", "filed_late", {"cif": "9", "submission_id": "", "filed_outside": True,
                                                  "invoice_id": 7}) == "https://a/companies/9/invoices"
    assert action_url("https://a", "filed_late", {"cif": "9", "submission_id": "s"}) == \
        "https://a/companies/9/submissions/s"
    assert action_url("https://a", "filing_deadline_approaching", {"cif": "9", "submission_id": "",
                                                                   "draft_id": "d"}) == \
        "https://a/companies/9/submissions"


async def test_outside_and_draft_notices_reach_the_company_and_its_firm_once(stack: Stack) -> None:
    st = stack
    for ev in (CompanyRegistered(cif=CIF, name="Client SRL"), CompanyRegistered(cif=FIRM, name="Contabil SRL"),
               UserRegistered(user_id="ana", email="ana@client.ro", name="Ana Popescu"),
               UserRegistered(user_id="fay", email="fay@contabil.ro", name="Fay Pop", locale="en")):
        await st.feed(ev, consumer="notifier.read-models")
    for ev in (AccessChanged(cif=CIF, user_id="ana", role="owner", granted=True, verified=True),
               AccessChanged(cif=CIF, user_id="fay", role="accountant", granted=True, verified=True,
                             via_firm_cif=FIRM)):
        await st.feed(ev, consumer="notifier.access-read-model")
    late = await st.feed(FiledLate(
        cif=CIF, submission_id="", number="OUT-13", issue_date=date(2026, 2, 27), deadline=date(2026, 3, 6),
        filed_at=datetime(2026, 3, 9, 8, tzinfo=UTC), upload_index="5002", working_days_late=1,
        filed_outside=True, invoice_id=41, message_id="3001"))
    await st.feed(late)  # redelivery
    soon = await st.feed(FilingDeadlineApproaching(
        cif=CIF, submission_id="", number="DR-1", issue_date=date(2026, 3, 5), deadline=date(2026, 3, 12),
        deadline_at=datetime(2026, 3, 12, 21, 59, 59, tzinfo=UTC), working_hours_left=12.0, state="draft",
        submitted_by="ana", draft_id="d1"))
    await st.feed(soon)
    await st.send_all()

    for user in ("ana", "fay"):
        rows = await st.inbox_rows(user)
        assert sorted(r["kind"] for r in rows) == ["filed_late", "filing_deadline_approaching"], user
    ro = {m["subject"]: m for m in st.mails("ana@client.ro")}
    assert len(ro) == 2
    late_ro = next(m for s, m in ro.items() if "după termen" in s)
    assert "OUT-13" in late_ro["subject"] and "/companies/22222220/invoices" in late_ro["text"]
    assert "/submissions/" not in late_ro["text"]
    soon_ro = next(m for s, m in ro.items() if "DR-1" in s)
    assert "salvată ca ciornă" in soon_ro["text"] and "/companies/22222220/submissions" in soon_ro["text"]
    en = {m["subject"]: m for m in st.mails("fay@contabil.ro")}
    assert len(en) == 2
    assert any("saved as a draft" in m["text"] for m in en.values())
