"""The filing clock's notices: `efactura.filing-deadline-approaching` and `efactura.filed-late` reach the company's
people and its collaborating accounting firm's (in-app and e-mail, each in their language), once each, and no one
else."""
from __future__ import annotations

from datetime import UTC, date, datetime

from ntfkit import Stack
from spvhub_common.events.auth import UserRegistered
from spvhub_common.events.efactura import FiledLate, FilingDeadlineApproaching
from spvhub_common.events.portfolio import AccessChanged, CompanyRegistered

CIF, FIRM, OTHER = "22222220", "33333330", "44444440"


async def test_deadline_notices_reach_the_company_and_its_firm_once(stack: Stack) -> None:
    st = stack
    for ev in (CompanyRegistered(cif=CIF, name="Client SRL"), CompanyRegistered(cif=FIRM, name="Contabil SRL"),
               UserRegistered(user_id="ana", email="ana@client.ro", name="Ana Popescu"),
               UserRegistered(user_id="fay", email="fay@contabil.ro", name="Fay Pop", locale="en"),
               UserRegistered(user_id="eve", email="eve@other.ro", name="Eve")):
        await st.feed(ev, consumer="notifier.read-models")
    for ev in (AccessChanged(cif=CIF, user_id="ana", role="owner", granted=True, verified=True),
               AccessChanged(cif=CIF, user_id="fay", role="accountant", granted=True, verified=True, via_firm_cif=FIRM),
               AccessChanged(cif=OTHER, user_id="eve", role="owner", granted=True, verified=True)):
        await st.feed(ev, consumer="notifier.access-read-model")
    soon = await st.feed(FilingDeadlineApproaching(
        cif=CIF, submission_id="s1", number="CL-12", issue_date=date(2026, 5, 29), deadline=date(2026, 6, 8),
        deadline_at=datetime(2026, 6, 8, 20, 59, 59, tzinfo=UTC), working_hours_left=20.5, state="received"))
    await st.feed(soon)  # redelivery
    late = await st.feed(FiledLate(
        cif=CIF, submission_id="s2", number="CL-13", issue_date=date(2026, 5, 29), deadline=date(2026, 6, 8),
        filed_at=datetime(2026, 6, 9, 7, 30, tzinfo=UTC), upload_index="5001", working_days_late=1))
    await st.feed(late, skip_inbox=True)  # replay past the inbox claim
    await st.send_all()

    for user in ("ana", "fay"):
        rows = await st.inbox_rows(user)
        assert sorted((r["kind"], r["params"]["submission_id"]) for r in rows) == [
            ("filed_late", "s2"), ("filing_deadline_approaching", "s1")], user
    assert await st.inbox_rows("eve") == []
    ro = {m["subject"]: m for m in st.mails("ana@client.ro")}
    assert len(ro) == 2
    soon_ro = next(m for s, m in ro.items() if "până pe 08.06.2026" in s)
    assert "CL-12" in soon_ro["subject"] and "5 zile lucrătoare" in soon_ro["text"]
    assert "/companies/22222220/submissions/s1" in soon_ro["text"]
    late_ro = next(m for s, m in ro.items() if "după termen" in s)
    assert "09.06.2026 10:30" in late_ro["text"] and "08.06.2026" in late_ro["text"]
    en = {m["subject"]: m for m in st.mails("fay@contabil.ro")}
    assert any("must be filed in RO e-Factura by 08.06.2026" in s for s in en)
    assert any("filed after the deadline" in s for s in en)
    assert st.mails("eve@other.ro") == []
