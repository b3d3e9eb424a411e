"""Outgoing e-Factura submissions: checks before filing, idempotency keys, exactly one upload per key,
validation first, stareMesaj followed to `ok`/`nok`, the error report explained, the inbox rows linked, buyer
messages (RASP).

Exactly one upload per (cif, idempotency key), across concurrent requests, retries, crashes and replicas:
1. The row is inserted first under UNIQUE (cif, idempotency_key) in state `received`; concurrent requests with the
   same key all get that one row (a different XML under the key is refused: `idempotency_key_reused`).
2. One worker claims it (`received -> uploading`, conditional UPDATE with SKIP LOCKED, lease in database time,
   renewed by a heartbeat while the worker lives).
3. Right before calling ANAF it commits `upload_started_at`. The upload itself is never retried.
4. The answer is committed at once (`processing` + `index_incarcare`, the response blob written first).
5. If the worker dies (or the call times out / answers 5xx) after step 3 and before step 4, nobody knows whether
   ANAF filed the document. Such a submission becomes `unknown` and is *never uploaded blindly*: the inbox sync of
   the company is requested and the ledger is searched for the upload's trace - a `FACTURA TRIMISA` whose parsed
   invoice has the same number/issue date (and seller) and whose `id_solicitare` no submission claims, or an
   `ERORI FACTURA` when this is the company's only unknown submission. Found: the index is adopted and followed as
   usual. Only when the sync has listed ANAF's messages up to `upload_started_at + unknown_grace_seconds` with no
   trace (and nothing listed is still waiting to be downloaded) is the submission uploaded again.
An upload that never left (our budget refused, ANAF's daily RASP cap, connection refused, WAF page, 401/403) is
known not to be filed and is retried later.
"""
from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from spvhub_common.access import accessible_cifs, require_access, require_grant
from spvhub_common.anaf.budget import AnafBudget, BudgetKind
from spvhub_common.anaf.errors import (
    AnafError,
    AnafUnavailable,
    InvalidDocument,
    LimitReached,
    NoRights,
    NotFound,
    Unauthorized,
    ValidationError,
    WafRejected,
)
from spvhub_common.anaf.models import STATE_NOK, STATE_OK, STATE_PROCESSING, STATE_REJECTED
from spvhub_common.blobs import BlobStore
from spvhub_common.clock import Clock, next_local_midnight
from spvhub_common.errors import Forbidden
from spvhub_common.events.efactura import (
    FiledLate,
    FilingDeadlineApproaching,
    InvoiceAccepted,
    InvoiceRejected,
    InvoiceSubmitted,
)
from spvhub_common.ids import mask_cnp, strip_ro
from spvhub_common.logging import get_logger
from spvhub_common.paging import decode_time_cursor, encode_cursor
from spvhub_common.pii import PersonIds, is_person_key
from spvhub_common.ro_calendar import RO_TZ, default_calendar
from spvhub_einvoice import Validator, default_validator

from spvhub_efactura import domain as inbox_domain
from spvhub_efactura.adapters import queries
from spvhub_efactura.adapters.anaf import resets_at_of
from spvhub_efactura.adapters.ledger import LedgerMessage
from spvhub_efactura.adapters.orm import access_grants
from spvhub_efactura.anaf_errors import explain_all
from spvhub_efactura.settings import Settings
from spvhub_efactura.submissions import domain, drafts, errors, filing, routing
from spvhub_efactura.submissions import repository as repo
from spvhub_efactura.submissions.anaf import SubmissionAnaf, Uploaded
from spvhub_efactura.submissions.document import inspect_invoice_xml, rasp_xml
from spvhub_efactura.sync import SyncPaused, UowFactory, persons

log = get_logger(__name__)

_EVENT_FIELDS = ("code", "field", "message", "explanation_ro", "explanation_en")
T = TypeVar("T")


class Inbox(Protocol):
    """What a submission uses of the inbox sync: the company's ANAF connection and its token, what ANAF knows the
    company by (a person key's CNP, unsealed), a sync on demand, and the download of one ledger message through
    the sync's own path."""

    async def connection_for(self, cif: str, *, filing: bool = False) -> str: ...

    async def anaf_id_of(self, cif: str) -> str: ...

    async def with_token(self, connection_id: str, call: Callable[[str], Awaitable[T]]) -> T: ...

    async def request_sync(self, cif: str) -> bool: ...

    async def download_one(self, cif: str, connection_id: str, msg: LedgerMessage) -> str: ...


@dataclass
class SubmitCommand:
    cif: str
    xml: bytes
    user_id: str | None
    client_key: str | None = None
    extern: bool | None = None  # None: derived from the document (routing.decide)
    autofactura: bool = False
    b2c: bool | None = None  # None: derived from the document
    validate_first: bool = False
    standard: str | None = None  # optional; must match the root
    offline_validation: bool | None = None  # None: the deployment's default (on)


@dataclass(frozen=True)
class Submitted:
    """What `submit` answers: the submission (new, or the one already under the key), whether this call created
    it, and what the offline validation pointed out in this call's document without refusing it. The warnings are
    not a column (never stored, a later read of the submission has none), so they travel beside the record rather
    than in it."""
    submission: repo.Submission
    created: bool
    warnings: tuple[dict[str, Any], ...] = ()


# --------------------------------------------------------------------------------------------------
# Use cases

class SubmissionService:
    """Submit, claim/upload, follow, reconcile, link. Safe with many replicas (leases + conditional updates)."""

    def __init__(self, settings: Settings, uow: UowFactory, sync: Inbox, anaf: SubmissionAnaf,
                 blobs: BlobStore, clock: Clock, budget: AnafBudget | None = None, *,
                 instance_id: str | None = None, validator: Validator | None = None) -> None:
        self.settings = settings
        self.uow = uow
        self.sync = sync
        self.anaf = anaf
        self.blobs = blobs
        self.clock = clock
        self.budget = budget
        self.me = instance_id or f"sub-{uuid.uuid4().hex[:12]}"
        self.validator = validator or default_validator()
        self.person_ids = PersonIds.from_settings(settings)
        # compile the Schematron (about a second) now rather than in the first submission's request
        threading.Thread(target=self.validator.warm, name="validator-warm", daemon=True).start()
        self._next_deadline_scan: datetime | None = None
        self._inline: set[asyncio.Task[Any]] = set()

    # -- commands ----------------------------------------------------------------------------------
    async def submit(self, cmd: SubmitCommand) -> Submitted:
        """Create (or find) the submission for the key and try to file it now, with the offline validation's
        warnings."""
        # two parses of up to 10 MB (defusedxml's check, then lxml): off the event loop that answers everyone else
        ins = await asyncio.to_thread(inspect_invoice_xml, cmd.xml, self.settings.submission_max_xml_bytes)
        if cmd.standard and cmd.standard.upper() != ins.standard:
            raise errors.standard_mismatch(cmd.standard, ins.document_type, ins.standard)
        own = strip_ro(domain.owner_cif(ins.seller_cif, ins.buyer_cif, cmd.autofactura) or "").upper()
        # a natural person files under its person key: the document names it by its CNP
        if (self._platform_id(own) or "") != cmd.cif:
            if is_person_key(cmd.cif):
                raise errors.seller_not_this_person(cmd.cif)
            shown = mask_cnp(own) if routing.is_cnp(own) else own
            raise errors.seller_mismatch("buyer (self-billing)" if cmd.autofactura else "seller", shown or None,
                                         cmd.cif)
        route = routing.decide(ins.buyer, autofactura=cmd.autofactura, b2c=cmd.b2c, extern=cmd.extern)
        offline = cmd.offline_validation
        if offline is None:
            offline = self.settings.submission_offline_validation
        warnings: list[dict[str, Any]] = []
        if offline:
            report = await self.validator.validate_async(cmd.xml)
            if not report.ok:
                log.info("submission refused offline", cif=cmd.cif, rules=report.codes()[:20])
                raise errors.invalid_document(report)
            warnings = [f.as_dict() for f in report.warnings[:50]]
        # CNPs (a person seller, a B2C buyer) are kept as their person keys, never in clear
        seller, buyer = self._platform_id(ins.seller_cif), self._platform_id(ins.buyer_cif)
        key, source = domain.idempotency_key(cmd.client_key, seller, ins.number, ins.issue_date)
        values = dict(standard=ins.standard, document_type=ins.document_type, number=ins.number,
                      issue_date=ins.issue_date, seller_cif=seller, buyer_cif=buyer,
                      extern=route.extern, autofactura=cmd.autofactura, b2c=route.b2c,
                      route_reason=route.reason.value, validate_first=cmd.validate_first)
        row, created, _ = await self._create(cmd.cif, "invoice", key, source, cmd.xml, cmd.user_id, values)
        return Submitted(row, created, tuple(warnings))

    async def submit_buyer_message(self, invoice: queries.Invoice, message: str, user_id: str | None,
                                   client_key: str | None) -> tuple[repo.Submission, bool]:
        """A RASP about a received invoice, filed by the buyer (the invoice's company), within 1000/day per CUI."""
        if invoice.direction != "received" or invoice.document_type not in ("invoice", "credit_note"):
            raise errors.not_a_received_invoice()
        if not invoice.upload_index:
            raise errors.no_upload_index()
        text_ = domain.buyer_message_text(message)
        cif = invoice.cif
        if self.budget is not None:
            left = await self.budget.remaining(BudgetKind.EF_UPLOAD_RASP, cif)
            if left is not None and left <= 0:
                raise self._quota_error(cif, None)
        xml = rasp_xml(str(invoice.upload_index), text_)
        key, source = domain.buyer_message_key(client_key, invoice.id, text_)
        values = dict(standard="RASP", document_type="buyer_message", invoice_id=invoice.id,
                      ref_upload_index=str(invoice.upload_index), seller_cif=invoice.seller_cif,
                      buyer_cif=cif, number=invoice.number, issue_date=invoice.issue_date)
        row, created, outcome = await self._create(cif, "buyer_message", key, source, xml, user_id, values)
        if created and outcome == "quota":
            raise self._quota_error(cif, row.next_attempt_at)
        return row, created

    def _platform_id(self, value: str | None) -> str | None:
        """A CNP as its person key; anything else as written (the placeholder of 13 zeros names nobody)."""
        return persons.keyed_id(self.person_ids, value)

    def _scrub(self, text: str) -> str:
        """ANAF's wording with every CNP replaced by its person key (what may be stored, logged or published)."""
        return persons.keyed_text(self.person_ids, text) or ""

    def _quota_error(self, cif: str, at: datetime | None) -> errors.QuotaExhaustedError:
        now = self.clock.now()
        return errors.rasp_quota_exhausted(cif, at or next_local_midnight(now), now)

    async def _create(self, cif: str, kind: str, key: str, source: str, xml: bytes, user_id: str | None,
                      values: dict[str, Any]) -> tuple[repo.Submission, bool, str | None]:
        """(the submission, created, the outcome of filing it now when created)."""
        sha = hashlib.sha256(xml).hexdigest()
        xml_key = f"efactura/{cif}/submissions/xml/{sha}.xml"
        await self.blobs.put(xml_key, xml, "application/xml")  # blob before the row that points at it
        sid = uuid.uuid4().hex
        async with self.uow() as uow:
            row, created = await repo.insert_or_get(uow.session, dict(
                id=sid, cif=cif, kind=kind, idempotency_key=key, key_source=source, xml_sha256=sha, xml_key=xml_key,
                xml_size=len(xml), submitted_by=user_id, state="received", **values))
            await uow.commit()
        if not created:
            if row.xml_sha256 != sha:
                raise errors.idempotency_key_reused(key, row.id, row.state)
            return row, False, None
        outcome = await self.advance(sid)
        fresh = await self.get(sid)
        if fresh is not None and outcome == "quota" and kind == "buyer_message":
            # The caller is told 429: the message must not go out later behind their back.
            async with self.uow() as uow:
                deleted = await repo.delete_unsent(uow.session, sid)
                await uow.commit()
            if deleted:
                return fresh, True, outcome
        return fresh or row, True, outcome

    async def get(self, submission_id: str) -> repo.Submission | None:
        async with self.uow() as uow:
            return await repo.get(uow.session, submission_id)

    # -- reads and access (what the API asks) -------------------------------------------------------
    async def scoped_cif(self, user_id: str, cif: str, *, file: bool = False) -> str:
        """A verified grant on the CIF; to file, one that may act at ANAF in its name, and an ANAF authorization
        that may file for the company (refused now rather than accepted and never sent)."""
        async with self.uow() as uow:
            await require_grant(uow.session, access_grants, user_id, cif, file=file)
            if file and not await queries.can_file_through_anaf(uow.session, cif):
                raise errors.no_filing_connection(cif)
        return cif

    async def readable_cifs(self, user_id: str) -> list[str]:
        async with self.uow() as uow:
            return await accessible_cifs(uow.session, access_grants, user_id)

    async def readable(self, user_id: str, submission_id: str) -> repo.Submission:
        """The submission, when the caller may read its company; 404 otherwise (as if it did not exist)."""
        row = await self.get(submission_id)
        if row is None:
            raise errors.submission_not_found(submission_id)
        async with self.uow() as uow:
            try:
                await require_access(uow.session, access_grants, user_id, row.cif)
            except Forbidden as e:  # do not reveal that it exists
                raise errors.submission_not_found(submission_id) from e
        return row

    async def may_send_buyer_message(self, user_id: str, cif: str) -> None:
        """Reading the invoice is not enough: sending at ANAF in the company's name needs a grant that may file."""
        async with self.uow() as uow:
            await require_grant(uow.session, access_grants, user_id, cif, file=True)

    async def list_page(self, cif: str, state: str | None, limit: int, cursor: str | None,
                        before: datetime | None = None) -> tuple[list[repo.Submission], str | None]:
        """A page of the company's submissions, newest first, and the cursor of the next page (None: the last).
        A cursor that is not one this gave answers 422 invalid_cursor."""
        after = decode_time_cursor(cursor) if cursor else None
        async with self.uow() as uow:
            rows = await repo.list_for(uow.session, cif, state, limit + 1, after=after, before=before)
        if len(rows) <= limit:
            return rows, None
        last = rows[limit - 1]
        return rows[:limit], encode_cursor(last.created_at, last.id)

    async def by_deadline(self, cifs: list[str], open_only: bool, limit: int) -> list[repo.Submission]:
        """Invoices by filing deadline, soonest first: those still to be filed, or (open_only=False) the last 90
        days'."""
        now = self.clock.now()
        since = now.astimezone(RO_TZ).date() - timedelta(days=90) if not open_only else None
        async with self.uow() as uow:
            return await repo.by_deadline(uow.session, cifs, open_only=open_only, limit=limit, since=since)

    async def blob(self, key: str) -> bytes:
        return await self.blobs.get(key)

    # -- claim and upload --------------------------------------------------------------------------
    async def advance(self, submission_id: str | None = None) -> str | None:
        """Claim one `received` submission (this one, or any due) and file it. Returns the outcome or None."""
        async with self.uow() as uow:
            rows = await repo.claim_received(uow.session, self.me, self.settings.submission_lease_seconds,
                                             self.clock.now(), 1, submission_id)
            await uow.commit()
        if not rows:
            return None
        return await self._run(rows[0])

    async def _heartbeat(self, sid: str) -> None:
        every = max(self.settings.submission_lease_seconds / 3, 0.2)
        while True:
            await asyncio.sleep(every)
            try:
                async with self.uow() as uow:
                    await repo.renew(uow.session, sid, self.me, self.settings.submission_lease_seconds)
                    await uow.commit()
            except Exception:  # noqa: BLE001 - the lease just runs shorter
                log.warning("submission lease renewal failed", submission_id=sid)

    async def _run(self, row: repo.Submission) -> str:
        hb = asyncio.create_task(self._heartbeat(row.id))
        try:
            return await self._file(row)
        finally:
            hb.cancel()

    async def _release(self, row: repo.Submission, error: str, at: datetime) -> None:
        """Not filed (known): back to `received`, retried at `at`."""
        async with self.uow() as uow:
            await repo.transition(uow.session, row.id, {"state": "uploading", "lease_owner": self.me},
                                  state="received", lease_owner=None, lease_until=None, upload_started_at=None,
                                  next_attempt_at=at, last_error=self._scrub(error)[:1000])
            await uow.commit()

    async def _file(self, row: repo.Submission) -> str:
        sid, cif = row.id, row.cif
        now = self.clock.now()
        retry_at = now + timedelta(seconds=self.settings.submission_retry_seconds)
        try:
            # only a connection entitled to file for the company (its own, or a firm the client allowed to)
            conn = await self.sync.connection_for(cif, filing=True)
        except SyncPaused as e:
            await self._release(row, f"no connection: {e}", retry_at)
            return "paused"
        try:
            # what ANAF knows the company by: the CIF, or a person key's CNP unsealed for this call only
            anaf_cif = await self.sync.anaf_id_of(cif)
        except SyncPaused as e:  # no CNP sealed for the key yet, or not its own: nothing can be filed
            await self._release(row, f"{e.code}: {e}", retry_at)
            return "paused"
        xml = await self.blobs.get(row.xml_key)
        if row.validate_first and row.validation is None:
            try:
                res = await self.sync.with_token(conn, lambda tok: self.anaf.validate(tok, xml, row.standard))
            except SyncPaused as e:
                await self._release(row, f"no connection: {e}", retry_at)
                return "paused"
            except LimitReached as e:
                await self._release(row, f"validare limit: {e.text}", resets_at_of(e, now))
                return "quota"
            except AnafError as e:
                await self._release(row, f"validare failed: {type(e).__name__}: {e.text}", retry_at)
                return "retry"
            validation = {"ok": res.ok, "messages": [self._scrub(m) for m in res.messages], "trace_id": res.trace_id}
            if not res.ok:
                await self._reject(row, "validation", res.messages, None, validation=validation,
                                   where={"state": "uploading", "lease_owner": self.me})
                return "rejected"
            async with self.uow() as uow:
                await repo.transition(uow.session, sid, {"lease_owner": self.me}, validation=validation)
                await uow.commit()
        # From here on a crash leaves a submission whose upload may have happened: commit that fact first.
        async with self.uow() as uow:
            started = await repo.transition(uow.session, sid, {"state": "uploading", "lease_owner": self.me},
                                            upload_started_at=self.clock.now(),
                                            upload_attempts=row.upload_attempts + 1)
            await uow.commit()
        if started is None:
            return "lost_lease"
        try:
            up: Uploaded = await self.sync.with_token(conn, lambda tok: self.anaf.upload(
                tok, xml, anaf_cif, row.standard, extern=row.extern, autofactura=row.autofactura,
                b2c=row.b2c, budget_key=cif))
        except asyncio.CancelledError:
            raise
        except SyncPaused as e:
            await self._release(row, f"no connection: {e}", retry_at)
            return "paused"
        except LimitReached as e:  # our budget or ANAF's daily RASP cap: refused before filing
            await self._release(row, f"limit: {e.text}", resets_at_of(e, now))
            return "quota"
        except (InvalidDocument, ValidationError, NoRights) as e:  # ANAF refused synchronously: not filed
            resp = getattr(e, "response", None)
            key = None
            if resp:
                key = f"efactura/{cif}/submissions/{sid}/upload-response.xml"
                await self.blobs.put(key, resp, "application/xml")
            await self._reject(row, "upload", [e.text], None, upload_response_key=key,
                               where={"state": "uploading", "lease_owner": self.me})
            return "rejected"
        except (WafRejected, Unauthorized) as e:  # blocked before ANAF's application saw it
            await self._release(row, f"{type(e).__name__}: {e.text}", retry_at)
            return "retry"
        except AnafUnavailable as e:
            if "ConnectError" in e.text or "ConnectTimeout" in e.text:  # never connected: not filed
                await self._release(row, f"unavailable: {e.text}", retry_at)
                return "retry"
            await self._unknown(row, f"upload outcome unknown: {e.text}")
            return "unknown"
        except Exception as e:  # noqa: BLE001 - timeouts, unexpected answers: ANAF may have filed it
            log.warning("upload outcome unknown", submission_id=sid, error=self._scrub(str(e)[:300]))
            await self._unknown(row, f"upload outcome unknown: {type(e).__name__}: {str(e)[:300]}")
            return "unknown"
        await self._record_uploaded(row, up)
        return "uploaded"

    async def _unknown(self, row: repo.Submission, note: str) -> None:
        async with self.uow() as uow:
            await repo.transition(uow.session, row.id, {"state": "uploading", "anaf_index": None},
                                  state="unknown", lease_owner=None, lease_until=None,
                                  reconcile_note=self._scrub(note)[:1000],
                                  next_check_at=self.clock.now()
                                  + timedelta(seconds=self.settings.submission_unknown_check_seconds))
            await uow.commit()

    async def _record_uploaded(self, row: repo.Submission, up: Uploaded) -> None:
        sid, cif = row.id, row.cif
        key = f"efactura/{cif}/submissions/{sid}/upload-response.xml"
        await self.blobs.put(key, up.response, "application/xml")
        now = self.clock.now()
        async with self.uow() as uow:
            # Accepted also from `unknown`: the answer is authoritative whenever it arrives.
            done = await repo.transition(
                uow.session, sid, {"state": ["uploading", "unknown"], "anaf_index": None},
                state="processing", anaf_index=up.index, uploaded_at=now, upload_response_key=key,
                lease_owner=None, lease_until=None, last_error=None,
                next_check_at=now + timedelta(seconds=self.settings.submission_first_check_seconds))
            if done is not None:
                uow.publish(self._submitted_event(done))
            await uow.commit()

    def _submitted_event(self, r: repo.Submission) -> InvoiceSubmitted:
        return InvoiceSubmitted(cif=r.cif, submission_id=r.id, upload_index=r.anaf_index, kind=r.kind,
                                standard=r.standard, document_type=r.document_type, number=r.number,
                                issue_date=r.issue_date, buyer_cif=r.buyer_cif, b2c=r.b2c,
                                submitted_by=r.submitted_by)

    async def _reject(self, row: repo.Submission, stage: str, texts: list[str], index: str | None, *,
                      where: dict[str, Any], **values: Any) -> repo.Submission | None:
        texts = [self._scrub(t) for t in texts]
        explained = explain_all(texts) or explain_all([f"ANAF a respins documentul ({stage})."])
        async with self.uow() as uow:
            done = await repo.transition(uow.session, row.id, where, state="rejected", error_stage=stage,
                                         errors=explained, finished_at=self.clock.now(), lease_owner=None,
                                         lease_until=None, next_check_at=None, **values)
            if done is not None:
                uow.publish(InvoiceRejected(
                    cif=done.cif, submission_id=done.id, stage=stage, upload_index=index or done.anaf_index,
                    kind=done.kind, document_type=done.document_type, number=done.number,
                    issue_date=done.issue_date, submitted_by=done.submitted_by,
                    error_codes=[str(e["code"]) for e in explained if e.get("code")][:50],
                    errors=[{k: (None if e.get(k) is None else str(e[k])[:1000]) for k in _EVENT_FIELDS}
                            for e in explained[:50]]))
            await uow.commit()
        return done

    # -- the worker --------------------------------------------------------------------------------
    async def tick(self) -> dict[str, int]:
        """One round: recover dead claims, file received ones, follow processing ones, reconcile unknown ones,
        link accepted ones to their inbox row."""
        stats = {"recovered": 0, "filed": 0, "checked": 0, "reconciled": 0, "linked": 0}
        now = self.clock.now()
        async with self.uow() as uow:
            stats["recovered"] = len(await repo.recover_expired(uow.session))
            await uow.commit()
        for _ in range(self.settings.submission_batch):
            if await self.advance() is None:
                break
            stats["filed"] += 1
        if self._next_deadline_scan is None or now >= self._next_deadline_scan:
            self._next_deadline_scan = now + timedelta(seconds=self.settings.submission_deadline_scan_seconds)
            try:
                stats["deadline_warnings"] = await self.scan_deadlines()
            except Exception:  # noqa: BLE001 - the next scan tries again
                log.exception("filing deadline scan failed")
        for state, fn in (("processing", self.check), ("unknown", self.reconcile), ("link", self.link)):
            async with self.uow() as uow:
                rows = await repo.claim_due(uow.session, state, self.me, self.settings.submission_lease_seconds, now,
                                            self.settings.submission_batch)
                await uow.commit()
            for r in rows:
                try:
                    await fn(r)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - the row is retried after its lease
                    log.exception("submission step failed", submission_id=r.id, step=state)
                    await self._later(r, self.settings.submission_retry_seconds)
            stats[{"processing": "checked", "unknown": "reconciled", "link": "linked"}[state]] += len(rows)
        return stats

    async def _later(self, row: repo.Submission, seconds: float, *, owned: bool = True, **values: Any) -> None:
        if values.get("last_error"):
            values["last_error"] = self._scrub(values["last_error"])
        async with self.uow() as uow:
            await repo.transition(uow.session, row.id, {"lease_owner": self.me} if owned else {},
                                  lease_owner=None, lease_until=None,
                                  next_check_at=self.clock.now() + timedelta(seconds=seconds), **values)
            await uow.commit()

    # -- the filing clock ---------------------------------------------------------------------------
    def _filed_late(self, row: repo.Submission) -> FiledLate | None:
        issue, filed_at = row.issue_date, row.uploaded_at
        if row.kind != "invoice" or issue is None or filed_at is None:
            return None
        dl = filing.deadline(issue)
        if filed_at < dl.ends_at:
            return None
        late_days = filing.working_days_late(dl, filed_at)
        return FiledLate(cif=row.cif, submission_id=row.id, number=row.number, issue_date=issue,
                         deadline=dl.last_day, filed_at=filed_at, upload_index=row.anaf_index,
                         working_days_late=late_days, submitted_by=row.submitted_by)

    async def scan_deadlines(self) -> int:
        """Publish `efactura.filing-deadline-approaching` once for each invoice still to be filed (a submission, or
        a draft) whose deadline is at most `deadline_warning_working_hours` working hours away (not for those
        already late)."""
        now = self.clock.now()
        since = now.astimezone(RO_TZ).date() - timedelta(days=self.settings.submission_deadline_scan_days)
        cal = default_calendar()
        async with self.uow() as uow:
            rows = await repo.unwarned_open(uow.session, since, 1000)
        told = 0
        for row in rows:
            dl = filing.deadline(row.issue_date, cal)
            left = filing.warning_due(dl, now, self.settings.submission_deadline_warning_working_hours, cal)
            if left is None:
                continue
            async with self.uow() as uow:
                if await repo.mark_warned(uow.session, row.id, now):
                    uow.publish(FilingDeadlineApproaching(
                        cif=row.cif, submission_id=row.id, number=row.number, issue_date=row.issue_date,
                        deadline=dl.last_day, deadline_at=dl.last_moment, working_hours_left=round(left / 3600, 1),
                        state=row.state, submitted_by=row.submitted_by))
                    told += 1
                await uow.commit()
        # drafts run on the same clock: saved, not filed, warned once like a submission still to be filed
        return told + await drafts.scan_deadlines(self, now)

    # -- following stareMesaj ----------------------------------------------------------------------
    async def check(self, row: repo.Submission) -> None:
        """One stareMesaj (or, after `nok`, fetching the error report)."""
        now = self.clock.now()
        if row.anaf_state == STATE_NOK and row.id_descarcare:
            await self._finish_nok(row)
            return
        try:
            conn = await self.sync.connection_for(row.cif)
            st = await self.sync.with_token(conn, lambda tok: self.anaf.state(tok, row.anaf_index))
        except LimitReached as e:  # 100/index/day: wait for the reset, never loop
            await self._later(row, max(1.0, (resets_at_of(e, now) - now).total_seconds()),
                              last_error=f"stareMesaj limit: {e.text}"[:1000])
            return
        except (SyncPaused, NotFound, AnafError) as e:
            await self._later(row, self.settings.submission_retry_seconds, last_error=f"stareMesaj: {e}"[:1000])
            return
        checks = row.state_checks + 1
        if st.stare == STATE_PROCESSING:
            await self._later(row, domain.check_backoff(checks, self.settings.submission_check_base_seconds,
                                                 self.settings.submission_check_max_seconds),
                              state_checks=checks, anaf_state=st.stare, last_checked_at=now)
        elif st.stare == STATE_OK:
            async with self.uow() as uow:
                done = await repo.transition(uow.session, row.id, {"state": "processing"}, state="accepted",
                                             anaf_state=st.stare, id_descarcare=st.id_descarcare,
                                             state_checks=checks, last_checked_at=now, finished_at=now,
                                             lease_owner=None, lease_until=None, next_check_at=now, last_error=None)
                if done is not None:
                    uow.publish(InvoiceAccepted(
                        cif=done.cif, submission_id=done.id, upload_index=done.anaf_index,
                        id_descarcare=st.id_descarcare, kind=done.kind, document_type=done.document_type,
                        number=done.number, issue_date=done.issue_date, buyer_cif=done.buyer_cif,
                        submitted_by=done.submitted_by))
                    late = self._filed_late(done)
                    if late is not None:
                        uow.publish(late)
                await uow.commit()
            if done is not None:
                await self.link(done, eager=True)
        elif st.stare == STATE_NOK:
            async with self.uow() as uow:
                done = await repo.transition(uow.session, row.id, {"state": "processing"}, anaf_state=st.stare,
                                             id_descarcare=st.id_descarcare, state_checks=checks, last_checked_at=now)
                await uow.commit()
            if done is not None:
                await self._finish_nok(done)
        elif st.stare == STATE_REJECTED:
            await self._reject(row, "upload", [st.stare], row.anaf_index, where={"state": "processing"},
                               anaf_state=st.stare, state_checks=checks, last_checked_at=now)
        else:
            await self._later(row, self.settings.submission_retry_seconds, anaf_state=st.stare[:64],
                              state_checks=checks)

    async def _archived_message(self, row: repo.Submission, message_id: str, tip: str,
                                kind: str) -> repo.AnswerMessage:
        """The ANAF message answering the submission, in the inbox ledger (inserted if the sync has not listed it
        yet) and archived through the sync's own path - so the inbox has it once, whoever gets there first."""
        cif = row.cif
        now = self.clock.now()
        async with self.uow() as uow:
            await repo.ensure_ledger_message(uow.session, cif, message_id, tip, kind, row.anaf_index, now,
                                             inbox_domain.purge_at(now), row.id)
            msg = await repo.ledger_message(uow.session, cif, message_id)
            await uow.commit()
        assert msg is not None
        due = msg.message.next_attempt_at is None or msg.message.next_attempt_at <= now
        if msg.message.state in ("listed", "failed") and due:
            conn = await self.sync.connection_for(cif)
            await self.sync.download_one(cif, conn, msg.message)
            async with self.uow() as uow:
                msg = await repo.ledger_message(uow.session, cif, message_id)
            assert msg is not None
        return msg

    async def _finish_nok(self, row: repo.Submission) -> None:
        """Download the error report (via id_descarcare), explain each error, link the inbox row."""
        mid = row.id_descarcare
        try:
            msg = await self._archived_message(row, mid, "ERORI FACTURA", inbox_domain.MessageKind.ERRORS.value)
        except SyncPaused as e:
            await self._later(row, self.settings.submission_retry_seconds, last_error=str(e)[:1000])
            return
        if msg.message.state != "archived":
            await self._later(row, self.settings.submission_retry_seconds,
                              last_error=f"error report not downloaded yet: {msg.last_error}"[:1000])
            return
        async with self.uow() as uow:
            inv = await repo.invoice_by_message(uow.session, row.cif, mid)
            report_id = await repo.link_inbox(uow.session, row.cif, row.anaf_index, row.id, True)
            await uow.commit()
        await self._reject(row, "processing", inv.error_texts if inv else [], row.anaf_index,
                           where={"state": "processing"},
                           error_report_key=(inv.xml_key if inv else None) or msg.message.zip_key,
                           error_report_invoice_id=report_id or (inv.id if inv else None))

    async def link(self, row: repo.Submission, eager: bool = False) -> None:
        """An accepted submission -> its sent invoice in the inbox (same row, `submission_id` set)."""
        cif, index = row.cif, row.anaf_index
        async with self.uow() as uow:
            inv_id = await repo.link_inbox(uow.session, cif, index, row.id, False)
            if inv_id is not None:
                await repo.transition(uow.session, row.id, {}, sent_invoice_id=inv_id, lease_owner=None,
                                      lease_until=None, next_check_at=None)
            await uow.commit()
        if inv_id is not None:
            return
        # Not in the inbox yet: fetch it now when its message id and kind are certain (the seller filed it), else
        # let the inbox sync bring it and try again later.
        if row.kind == "invoice" and not row.autofactura and row.id_descarcare:
            try:
                await self._archived_message(row, row.id_descarcare, "FACTURA TRIMISA",
                                             inbox_domain.MessageKind.SENT.value)
                async with self.uow() as uow:
                    inv_id = await repo.link_inbox(uow.session, cif, index, row.id, False)
                    if inv_id is not None:
                        await repo.transition(uow.session, row.id, {}, sent_invoice_id=inv_id, lease_owner=None,
                                              lease_until=None, next_check_at=None)
                    await uow.commit()
                if inv_id is not None:
                    return
            except SyncPaused:
                pass
        else:
            await self.sync.request_sync(cif)
        await self._later(row, self.settings.submission_retry_seconds, owned=False)

    # -- reconciling an interrupted upload ---------------------------------------------------------
    async def reconcile(self, row: repo.Submission) -> None:
        """`unknown`: find the upload's trace in the inbox; adopt its index, or upload again only when ANAF's lists
        were read well past the grace period with no trace."""
        cif = row.cif
        now = self.clock.now()
        started = row.upload_started_at or row.updated_at
        since = started - timedelta(minutes=5)
        await self.sync.request_sync(cif)
        async with self.uow() as uow:
            evidence = await repo.reconcile_evidence(uow.session, cif, since)
            unknowns = await repo.unknown_count(uow.session, cif)
            listed_until = await repo.watermark(uow.session, cif)
        match = domain.find_trace(row, evidence, unknowns)
        if match is not None:
            note = (f"interrupted upload found at ANAF: message {match.message_id} ({match.tip}) answers "
                    f"id_incarcare={match.upload_index}")
            async with self.uow() as uow:
                done = await repo.transition(uow.session, row.id, {"state": "unknown", "anaf_index": None},
                                             state="processing", anaf_index=match.upload_index, uploaded_at=started,
                                             reconcile_note=note, lease_owner=None, lease_until=None, next_check_at=now)
                if done is not None:
                    uow.publish(self._submitted_event(done))
                await uow.commit()
            log.info("interrupted upload reconciled", submission_id=row.id, index=match.upload_index)
            return
        if domain.may_upload_again(now, started, self.settings.submission_unknown_grace_seconds, listed_until,
                                   domain.still_downloading(evidence)):
            assert listed_until is not None
            async with self.uow() as uow:
                await repo.transition(
                    uow.session, row.id, {"state": "unknown", "anaf_index": None}, state="received",
                    upload_started_at=None, lease_owner=None, lease_until=None, next_attempt_at=now,
                    reconcile_note=f"no trace at ANAF of the interrupted upload of {started.isoformat()} in the "
                                   f"messages listed up to {listed_until.isoformat()}: uploading again")
                await uow.commit()
            return
        await self._later(row, self.settings.submission_unknown_check_seconds)
