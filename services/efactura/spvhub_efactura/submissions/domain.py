"""The rules of a submission, pure (no I/O): its states and the moves between them, the idempotency keys, the
stareMesaj schedule, and how an interrupted upload is recognised in the inbox or judged safe to upload again."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from spvhub_common.ids import strip_ro

from spvhub_efactura.submissions import errors


class SubmissionState(StrEnum):
    RECEIVED = "received"      # stored, not uploaded (or known not to have reached ANAF)
    UPLOADING = "uploading"    # claimed by one worker under a lease
    PROCESSING = "processing"  # ANAF gave an index; stareMesaj followed
    ACCEPTED = "accepted"      # stareMesaj ok
    REJECTED = "rejected"      # refused (validare, upload, or stareMesaj nok with its error report)
    UNKNOWN = "unknown"        # the upload may have reached ANAF: looked for before any new upload


ACTIVE = (SubmissionState.RECEIVED, SubmissionState.UPLOADING, SubmissionState.PROCESSING, SubmissionState.UNKNOWN)
FINAL = (SubmissionState.ACCEPTED, SubmissionState.REJECTED)
# Still to be filed for the filing clock: not uploaded yet, interrupted, or rejected (unless filed again since).
NOT_FILED = (SubmissionState.RECEIVED, SubmissionState.UPLOADING, SubmissionState.UNKNOWN, SubmissionState.REJECTED)

_S = SubmissionState
MOVES: dict[SubmissionState, frozenset[SubmissionState]] = {
    # claimed; or refused by our offline/ANAF validation before anything was filed
    _S.RECEIVED: frozenset({_S.UPLOADING}),
    # released (known not filed), answered (index), refused synchronously, or interrupted (outcome unknown)
    _S.UPLOADING: frozenset({_S.RECEIVED, _S.PROCESSING, _S.REJECTED, _S.UNKNOWN}),
    # the late answer or the trace found at ANAF gives the index; no trace past the grace: upload again
    _S.UNKNOWN: frozenset({_S.PROCESSING, _S.RECEIVED}),
    _S.PROCESSING: frozenset({_S.ACCEPTED, _S.REJECTED}),
    _S.ACCEPTED: frozenset(),
    _S.REJECTED: frozenset(),
}


def can_move(frm: str, to: str) -> bool:
    """Whether a submission may go from `frm` to `to` (every transition is also a conditional UPDATE)."""
    return SubmissionState(to) in MOVES[SubmissionState(frm)]


# -- idempotency ---------------------------------------------------------------------------------------

_KEY_OK = re.compile(r"^[\x21-\x7e]{1,200}$")


def idempotency_key(client_key: str | None, seller_cif: str | None, number: str | None,
                    issue_date: date | None) -> tuple[str, str]:
    """(key, source): the client's key, else derived from seller CIF + series/number + issue date."""
    if client_key is not None and client_key.strip():
        key = client_key.strip()
        if not _KEY_OK.match(key):
            raise errors.invalid_idempotency_key()
        return key, "client"
    if not (seller_cif and number and issue_date):
        raise errors.idempotency_key_required()
    return f"derived:{seller_cif}:{number.strip()[:120]}:{issue_date.isoformat()}", "derived"


def buyer_message_text(message: str) -> str:
    """The RASP text as sent: runs of whitespace made one space; empty is refused."""
    text = " ".join(message.split())
    if not text:
        raise errors.empty_message()
    return text


def buyer_message_key(client_key: str | None, invoice_id: int, text: str) -> tuple[str, str]:
    """(key, source) of a buyer message: the client's key, else one per invoice and text (the same message about
    the same invoice is sent once)."""
    if client_key:
        return idempotency_key(client_key, None, None, None)
    return f"rasp:{invoice_id}:{hashlib.sha256(text.encode()).hexdigest()[:32]}", "derived"


def owner_cif(seller_cif: str | None, buyer_cif: str | None, autofactura: bool) -> str | None:
    """The company in the XML that files it: the seller, or the buyer when it bills itself (autofactura)."""
    return buyer_cif if autofactura else seller_cif


# -- following stareMesaj -------------------------------------------------------------------------------

def check_backoff(checks: int, base: float, cap: float) -> float:
    """Seconds until the next stareMesaj: base, 2*base, 4*base ... capped (stays far under 100/index/day)."""
    return float(min(cap, base * (2 ** max(0, checks - 1))))


# -- an interrupted upload --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Evidence:
    """An inbox message that answers an upload no submission claims yet, with what the inbox parsed from it."""
    message_id: str
    kind: str  # sent | received | errors | buyer_message
    tip: str
    upload_index: str
    state: str  # the ledger state: only an archived message is read as evidence
    listed_at: datetime
    invoice_id: int | None = None
    number: str | None = None
    issue_date: date | None = None
    seller_cif: str | None = None
    buyer_cif: str | None = None
    xml_key: str | None = None
    document_type: str | None = None


class Traceable(Protocol):
    """What an interrupted upload is recognised by (columns of the repository's `Submission` record)."""

    @property
    def kind(self) -> str: ...

    @property
    def number(self) -> str | None: ...

    @property
    def issue_date(self) -> date | None: ...

    @property
    def seller_cif(self) -> str | None: ...


def find_trace(row: Traceable, evidence: Sequence[Evidence], unknowns: int) -> Evidence | None:
    """The inbox message that answers an interrupted upload, among the archived messages no submission claims:
    for an invoice, a sent (or self-billed, received) invoice with the same number, issue date and seller; else an
    error report, or for a buyer message another buyer message, only when this is the company's one `unknown`
    submission (nothing else could tell them apart)."""
    match = None
    for e in evidence:
        if e.state != "archived":
            continue
        if row.kind == "invoice" and e.kind in ("sent", "received") and e.number is not None:
            if (e.number == row.number and e.issue_date == row.issue_date
                    and strip_ro(e.seller_cif or "").upper() == strip_ro(row.seller_cif or "").upper()):
                return e
        elif e.kind == "errors" and unknowns == 1:
            match = match or e
        elif row.kind == "buyer_message" and e.kind == "buyer_message" and unknowns == 1:
            match = match or e
    return match


def still_downloading(evidence: Sequence[Evidence]) -> bool:
    """A listed message not archived (nor lost) yet may be the trace: nothing is decided before it is read."""
    return any(e.state not in ("archived", "lost") for e in evidence)


def grace_end(started: datetime, grace_seconds: float) -> datetime:
    return started + timedelta(seconds=grace_seconds)


def may_upload_again(now: datetime, started: datetime, grace_seconds: float, listed_until: datetime | None,
                     downloading: bool) -> bool:
    """Only when ANAF's lists were read up to the grace period's end with no trace and nothing left to read is
    an interrupted upload sent again; never before the grace period is over."""
    end = grace_end(started, grace_seconds)
    return not downloading and now >= end and listed_until is not None and listed_until >= end
