"""The submissions' pure rules: the moves between states, the keys, and how an interrupted upload is recognised
in the inbox or judged safe to upload again; the filing clock's late days and warning."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from spvhub_common.errors import AppError
from spvhub_common.ro_calendar import RO_TZ
from spvhub_efactura.submissions import domain, filing
from spvhub_efactura.submissions.domain import SubmissionState as S


def test_moves_are_the_documented_state_machine() -> None:
    assert domain.can_move("received", "uploading")
    assert domain.can_move("uploading", "unknown") and domain.can_move("uploading", "received")
    assert domain.can_move("unknown", "processing") and domain.can_move("unknown", "received")
    assert domain.can_move("processing", "accepted") and domain.can_move("processing", "rejected")
    # never uploaded again blindly, never out of a final state, never back to work once accepted
    assert not domain.can_move("unknown", "uploading")
    assert not domain.can_move("accepted", "processing") and not domain.can_move("rejected", "received")
    assert not domain.can_move("received", "processing")
    assert set(domain.MOVES) == set(S)
    assert set(domain.ACTIVE) | set(domain.FINAL) == set(S)


def test_buyer_message_keys_and_text() -> None:
    assert domain.buyer_message_text("  bun \n  primit ") == "bun primit"
    with pytest.raises(AppError) as e:
        domain.buyer_message_text(" \n ")
    assert e.value.code == "validation_error"
    key, source = domain.buyer_message_key(None, 7, "bun primit")
    assert source == "derived" and key.startswith("rasp:7:") and len(key) == len("rasp:7:") + 32
    assert domain.buyer_message_key(None, 7, "bun primit") == (key, source)
    assert domain.buyer_message_key(None, 8, "bun primit")[0] != key
    assert domain.buyer_message_key("k-1", 7, "bun primit") == ("k-1", "client")


def test_owner_cif_is_the_buyer_when_self_billed() -> None:
    assert domain.owner_cif("RO1", "2", autofactura=False) == "RO1"
    assert domain.owner_cif("RO1", "2", autofactura=True) == "2"


@dataclass(frozen=True)
class _Traceable:
    """The columns an interrupted upload is recognised by."""
    kind: str
    number: str | None
    issue_date: date | None
    seller_cif: str | None


def _row(kind: str = "invoice") -> _Traceable:
    return _Traceable(kind, "F-1", date(2026, 3, 9), "RO12345678")


def _ev(kind: str, state: str = "archived", number: str | None = None, issue_date: date | None = None,
        seller_cif: str | None = None) -> domain.Evidence:
    return domain.Evidence(message_id="m", kind=kind, tip="t", upload_index="1", state=state,
                           listed_at=datetime(2026, 3, 9, tzinfo=UTC), number=number, issue_date=issue_date,
                           seller_cif=seller_cif)


def test_trace_of_an_interrupted_invoice_upload() -> None:
    same = _ev("sent", number="F-1", issue_date=date(2026, 3, 9), seller_cif=" 12345678")
    other = _ev("sent", number="F-2", issue_date=date(2026, 3, 9), seller_cif="12345678")
    report = _ev("errors")
    assert domain.find_trace(_row(), [other, report, same], unknowns=2) is same
    assert domain.find_trace(_row(), [other], unknowns=1) is None
    # an error report answers it only when nothing else could be meant
    assert domain.find_trace(_row(), [other, report], unknowns=1) is report
    assert domain.find_trace(_row(), [other, report], unknowns=2) is None
    # not read yet: not evidence, but it holds the decision
    unread = _ev("sent", state="listed", number="F-1", issue_date=date(2026, 3, 9), seller_cif="12345678")
    assert domain.find_trace(_row(), [unread], unknowns=1) is None
    assert domain.still_downloading([unread]) and not domain.still_downloading([same, _ev("sent", state="lost")])


def test_trace_of_an_interrupted_buyer_message() -> None:
    rasp = _ev("buyer_message")
    assert domain.find_trace(_row("buyer_message"), [rasp], unknowns=1) is rasp
    assert domain.find_trace(_row("buyer_message"), [rasp], unknowns=2) is None


def test_upload_again_only_after_the_lists_cover_the_grace_period() -> None:
    started = datetime(2026, 3, 9, 10, tzinfo=UTC)
    end = started + timedelta(seconds=120)
    assert domain.may_upload_again(end, started, 120, end, downloading=False)
    assert not domain.may_upload_again(end - timedelta(seconds=1), started, 120, end, downloading=False)
    assert not domain.may_upload_again(end, started, 120, end - timedelta(seconds=1), downloading=False)
    assert not domain.may_upload_again(end, started, 120, None, downloading=False)
    assert not domain.may_upload_again(end, started, 120, end, downloading=True)


def test_working_days_late_and_the_deadline_warning() -> None:
    dl = filing.deadline(date(2026, 2, 27))  # Friday: the term ends on Friday 6 March
    assert dl.last_day == date(2026, 3, 6)
    assert filing.working_days_late(dl, datetime(2026, 3, 6, 23, 0, tzinfo=RO_TZ)) == 0
    assert filing.working_days_late(dl, datetime(2026, 3, 9, 9, 0, tzinfo=RO_TZ)) == 1  # Monday
    assert filing.working_days_late(dl, datetime(2026, 3, 10, 9, 0, tzinfo=RO_TZ)) == 2
    # 24 working hours before the end: due; more: not yet; after the end: too late for a warning
    assert filing.warning_due(dl, datetime(2026, 3, 6, 0, 0, tzinfo=RO_TZ), 24) == 24 * 3600
    assert filing.warning_due(dl, datetime(2026, 3, 5, 12, 0, tzinfo=RO_TZ), 24) is None
    assert filing.warning_due(dl, datetime(2026, 3, 7, 0, 0, tzinfo=RO_TZ), 24) is None
