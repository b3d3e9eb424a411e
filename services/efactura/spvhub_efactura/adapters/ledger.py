"""The sync's writes: read models fed by auth/portfolio events, company leases and schedule, the message ledger's
conditional transitions, invoice rows and the quota ledger. Every function takes the unit of work's session and
never commits (the caller's transaction decides).

Hot statements (the listed upsert, the archive UPDATE, the invoice INSERT) take one typed array parameter per
column (`unnest`), so a statement has one text whatever the number of rows (prepared once per connection) and
asyncpg encodes the arrays in C, rather than SQLAlchemy binding rows x columns parameters one by one."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Numeric, String, delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from spvhub_efactura import domain
from spvhub_efactura.adapters.orm import companies, connections, entitlements, invoices, messages, quota_ledger

EFACTURA = "efactura"
PENDING = domain.pending_states()


# --------------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class LedgerMessage:
    """A message of the ledger as the sync downloads and archives it."""
    cif: str
    message_id: str
    state: str
    attempts: int
    listed_at: datetime
    purge_at: datetime
    next_attempt_at: datetime | None = None
    download_started_at: datetime | None = None
    zip_key: str | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> LedgerMessage:
        """From a `messages` row (a mapping of its columns)."""
        return cls(cif=row["cif"], message_id=row["message_id"], state=row["state"], attempts=row["attempts"],
                   listed_at=row["listed_at"], purge_at=row["purge_at"], next_attempt_at=row.get("next_attempt_at"),
                   download_started_at=row.get("download_started_at"), zip_key=row.get("zip_key"))


_MESSAGE_COLUMNS = (messages.c.cif, messages.c.message_id, messages.c.state, messages.c.attempts,
                    messages.c.listed_at, messages.c.purge_at, messages.c.next_attempt_at,
                    messages.c.download_started_at, messages.c.zip_key)


class CompanyStart(NamedTuple):
    """What a company's sync starts from."""
    watermark: datetime | None
    last_reconciled_at: datetime | None


class Expiring(NamedTuple):
    message_id: str
    purge_at: datetime
    last_error: str | None


@dataclass(frozen=True)
class ArchiveFacts:
    """What the ledger records of one archived message: the blob, the parse and the signature verdict."""
    cif: str
    message_id: str
    zip_key: str
    sha256: str
    size: int
    parse_status: str
    parse_error: str | None
    signature_status: str | None
    signature_detail: str | None
    signer_subject: str | None
    signer_sha256: str | None
    signature_shape: str | None
    signer_serial: str | None
    signer_trusted: bool | None
    problem: str | None


# --------------------------------------------------------------------------------------------------
# Read models (auth and portfolio events)


async def upsert_connection(session: AsyncSession, connection_id: str, holder_cif: str | None, status: str | None,
                            reason: str | None = None) -> None:
    values: dict[str, Any] = {"connection_id": connection_id, "holder_cif": holder_cif,
                              "status": status or "active", "status_reason": reason}
    set_: dict[str, Any] = {"updated_at": func.now()}
    if holder_cif:
        set_["holder_cif"] = holder_cif
    if status:
        set_["status"] = status
        set_["status_reason"] = reason
    await session.execute(insert(connections).values(**values)
                          .on_conflict_do_update(index_elements=["connection_id"], set_=set_))


async def pause_connection(session: AsyncSession, connection_id: str, reason: str) -> None:
    await session.execute(update(connections).where(connections.c.connection_id == connection_id)
                          .values(status="paused", status_reason=reason[:500], updated_at=func.now()))


@dataclass(frozen=True)
class Entitlement:
    connection_id: str
    holder_cif: str
    services: list[str]
    may_file: bool


async def replace_entitlements(session: AsyncSession, cif: str, ranked: Sequence[Entitlement],
                               cnp_sealed: str | None = None) -> None:
    """The CIF's entitled connections, best first, replace what we knew. A CIF with an e-Factura one is synced
    (due now when it had none); with none, its sync stops (the company row and its archive stay). `cnp_sealed`: a
    person key's CNP sealed to it, kept with the company's sync state (a snapshot without it keeps the one known)."""
    had = (await session.execute(select(func.count()).select_from(entitlements).where(
        entitlements.c.cif == cif, entitlements.c.services.any(EFACTURA)))).scalar()
    await session.execute(delete(entitlements).where(entitlements.c.cif == cif))
    if ranked:
        await session.execute(insert(entitlements).values([
            {"cif": cif, "rank": i, "connection_id": e.connection_id, "holder_cif": e.holder_cif,
             "services": e.services, "may_file": e.may_file} for i, e in enumerate(ranked)]))
    if any(EFACTURA in e.services for e in ranked):
        await session.execute(insert(companies).values(cif=cif, cnp_sealed=cnp_sealed).on_conflict_do_nothing())
        if not had:
            await session.execute(update(companies).where(companies.c.cif == cif).values(next_sync_at=None))
    if cnp_sealed is not None:
        # a new (or first) sealed CNP: due now, a sync paused for want of it need not wait for its interval
        await session.execute(update(companies).where(
            companies.c.cif == cif, companies.c.cnp_sealed.is_distinct_from(cnp_sealed)).values(
            cnp_sealed=cnp_sealed, next_sync_at=None))


# --------------------------------------------------------------------------------------------------
# Companies: leases and schedule


async def claim_due_companies(session: AsyncSession, owner: str, lease_seconds: float, now: datetime,
                              limit: int) -> list[str]:
    """Lease up to `limit` due companies that some active connection is entitled to sync (lease in database
    time; SKIP LOCKED so replicas never claim the same one)."""
    rows = (await session.execute(text("""
        UPDATE sync_companies SET lease_owner = :me, lease_until = now() + make_interval(secs => :lease)
        WHERE cif IN (
            SELECT c.cif FROM sync_companies c
            WHERE (c.lease_until IS NULL OR c.lease_until < now())
              AND (c.sync_requested OR c.next_sync_at IS NULL OR c.next_sync_at <= :now)
              AND (c.blocked_until IS NULL OR c.blocked_until <= :now OR c.sync_requested)
              AND EXISTS (SELECT 1 FROM entitlements e LEFT JOIN connections k
                          ON k.connection_id = e.connection_id
                          WHERE e.cif = c.cif AND 'efactura' = ANY(e.services)
                            AND COALESCE(k.status, 'active') = 'active')
            ORDER BY c.sync_requested DESC, c.next_sync_at ASC NULLS FIRST
            LIMIT :n FOR UPDATE SKIP LOCKED)
        RETURNING cif"""), {"me": owner, "lease": lease_seconds, "now": now, "n": limit})).scalars().all()
    return list(rows)


async def renew_lease(session: AsyncSession, cif: str, owner: str, lease_seconds: float) -> None:
    await session.execute(text(
        "UPDATE sync_companies SET lease_until = now() + make_interval(secs => :lease) "
        "WHERE cif = :cif AND lease_owner = :me"), {"lease": lease_seconds, "cif": cif, "me": owner})


async def sync_interval(session: AsyncSession, cif: str) -> int | None:
    """The company's own interval (None: the service default)."""
    row = (await session.execute(select(companies.c.interval_seconds).where(companies.c.cif == cif))).first()
    return row[0] if row and row[0] else None


async def earliest_retry(session: AsyncSession, cif: str) -> datetime | None:
    """When the company's first pending message is due again."""
    due: datetime | None = (await session.execute(select(func.min(messages.c.next_attempt_at)).where(
        messages.c.cif == cif, messages.c.state.in_(PENDING)))).scalar()
    return due


async def release_lease(session: AsyncSession, cif: str, owner: str, next_sync_at: datetime) -> None:
    await session.execute(update(companies).where(companies.c.cif == cif, companies.c.lease_owner == owner)
                          .values(lease_owner=None, lease_until=None, next_sync_at=next_sync_at))


async def record_failure(session: AsyncSession, cif: str, error: str, now: datetime) -> None:
    await session.execute(update(companies).where(companies.c.cif == cif).values(
        last_error=error[:1000], last_error_at=now, sync_requested=False,
        consecutive_failures=companies.c.consecutive_failures + 1))


async def request_sync(session: AsyncSession, cif: str) -> bool:
    """Due at the next tick, even when its interval has not elapsed (False: the company is not synced)."""
    res = await session.execute(update(companies).where(companies.c.cif == cif).values(sync_requested=True))
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def set_interval(session: AsyncSession, cif: str, seconds: int | None) -> bool:
    res = await session.execute(update(companies).where(companies.c.cif == cif).values(interval_seconds=seconds))
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def start_company_sync(session: AsyncSession, cif: str, now: datetime) -> CompanyStart | None:
    """Record the start of the company's sync; None for an unknown company."""
    row = (await session.execute(select(companies.c.watermark, companies.c.last_reconciled_at)
                                 .where(companies.c.cif == cif))).first()
    if row is None:
        return None
    await session.execute(update(companies).where(companies.c.cif == cif).values(
        last_started_at=now, sync_requested=False,
        first_sync_started_at=func.coalesce(companies.c.first_sync_started_at, now)))
    return CompanyStart(row.watermark, row.last_reconciled_at)


async def block_company(session: AsyncSession, cif: str, until: datetime, error: str, now: datetime) -> None:
    """Listing is spent for today: not claimed again before the reset (unless asked for)."""
    await session.execute(update(companies).where(companies.c.cif == cif).values(
        blocked_until=until, last_error=error[:1000], last_error_at=now))


async def advance_watermark(session: AsyncSession, cif: str, listed_until: datetime, now: datetime) -> None:
    await session.execute(update(companies).where(companies.c.cif == cif).values(
        watermark=listed_until, blocked_until=None,
        first_sync_completed_at=func.coalesce(companies.c.first_sync_completed_at, now)))


async def complete_sync(session: AsyncSession, cif: str, now: datetime, reconciled: bool | None) -> None:
    """A successful sync; `reconciled`: whether the whole window's ids are archived or lost (None: no
    reconciliation this time)."""
    values: dict[str, Any] = {"last_success_at": now, "last_error": None, "consecutive_failures": 0}
    if reconciled is not None:
        values.update(last_reconciled_at=now, last_reconcile_complete=reconciled)
    await session.execute(update(companies).where(companies.c.cif == cif).values(**values))


# --------------------------------------------------------------------------------------------------
# The ledger

_LISTED = ("cif", "message_id", "tip", "kind", "upload_index", "detalii", "listed_at", "purge_at", "first_seen_at",
           "last_seen_at", "state")


def _unnest(dialect: Any, cols: Iterable[Any]) -> str:
    """`unnest(CAST(:col AS type[]), ...)` over these columns (see the module's docstring)."""
    return "unnest({})".format(", ".join(f"CAST(:{c.name} AS {c.type.compile(dialect=dialect)}[])" for c in cols))


@lru_cache(maxsize=4)
def _listed_upsert(dialect: Any) -> Any:
    """Listed messages into the ledger: new ones inserted, known ones only get last_seen_at; RETURNING whether each
    row was inserted now (xmax = 0)."""
    cols = [messages.c[n] for n in _LISTED]
    return text(f"INSERT INTO messages ({', '.join(_LISTED)}) SELECT * FROM {_unnest(dialect, cols)} "
                "ON CONFLICT (cif, message_id) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at "
                "RETURNING (xmax = 0) AS inserted")


async def record_listed(session: AsyncSession, listed: Sequence[domain.ListedMessage], now: datetime) -> int:
    """Upsert listed messages (ids unique within the call); returns how many were new."""
    params: dict[str, list[Any]] = {
        "cif": [m.cif for m in listed], "message_id": [m.message_id for m in listed], "tip": [m.tip for m in listed],
        "kind": [m.kind.value for m in listed], "upload_index": [m.upload_index for m in listed],
        "detalii": [m.detalii for m in listed], "listed_at": [m.listed_at for m in listed],
        "purge_at": [m.purge_at for m in listed], "first_seen_at": [now] * len(listed),
        "last_seen_at": [now] * len(listed), "state": [domain.MessageState.LISTED.value] * len(listed)}
    res = await session.execute(_listed_upsert(session.get_bind().dialect), params)
    return sum(1 for r in res if r[0])


async def pending_batch(session: AsyncSession, cif: str, now: datetime, urgent_before: datetime,
                        exclude: set[str], limit: int) -> list[LedgerMessage]:
    """The company's pending messages due now: close to purge first (soonest first), then the freshest.

    Their downloads are marked as started before any of them goes out: a later run knows which messages may
    already have their ZIP archived (a run dying between the blob and the row) and only those pay for a blob
    lookup first. The records keep the previous value, which is what the download looks at."""
    q = (select(*_MESSAGE_COLUMNS).where(
        messages.c.cif == cif, messages.c.state.in_(PENDING),
        or_(messages.c.next_attempt_at.is_(None), messages.c.next_attempt_at <= now))
        .order_by(text("(purge_at <= :ub) DESC, CASE WHEN purge_at <= :ub THEN purge_at END ASC, listed_at DESC"))
        .limit(limit))
    rows = [LedgerMessage(*r) for r in (await session.execute(q, {"ub": urgent_before})).all()
            if r.message_id not in exclude][:limit]
    fresh = [m.message_id for m in rows if m.download_started_at is None]
    if fresh:
        await session.execute(update(messages).where(messages.c.cif == cif, messages.c.message_id.in_(fresh))
                              .values(download_started_at=now))
    return rows


async def mark_failed(session: AsyncSession, cif: str, message_id: str, error: str, next_at: datetime,
                      now: datetime, *, count: bool = True) -> None:
    await session.execute(update(messages).where(
        messages.c.cif == cif, messages.c.message_id == message_id, messages.c.state.in_(PENDING)).values(
        state=domain.MessageState.FAILED.value, attempts=messages.c.attempts + (1 if count else 0),
        last_attempt_at=now, next_attempt_at=next_at, last_error=error[:1000]))


async def mark_lost(session: AsyncSession, cif: str, message_id: str, reason: str, now: datetime) -> bool:
    """True when this call made the transition (its event is published once)."""
    res = await session.execute(update(messages).where(
        messages.c.cif == cif, messages.c.message_id == message_id, messages.c.state.in_(PENDING)).values(
        state=domain.MessageState.LOST.value, lost_reason=reason[:1000], attempts=messages.c.attempts + 1,
        last_attempt_at=now, next_attempt_at=None))
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def record_quota(session: AsyncSession, kind: str, scope_key: str, resets_at: datetime, anaf_text: str
                       ) -> bool:
    """True the first time this (kind, scope, reset) is recorded."""
    res = await session.execute(insert(quota_ledger).values(
        kind=kind[:64], scope_key=scope_key[:64], resets_at=resets_at, text=anaf_text[:1000])
        .on_conflict_do_nothing().returning(quota_ledger.c.kind))
    return res.first() is not None


_ARCHIVE_ARRAYS = (
    ("cif", "text"), ("mid", "text"), ("zip_key", "text"), ("sha", "text"), ("size", "integer"),
    ("parse_status", "text"), ("parse_error", "text"), ("flagged", "boolean"), ("sig_status", "text"),
    ("sig_detail", "text"), ("signer_subject", "text"), ("signer_sha", "text"), ("sig_shape", "text"),
    ("signer_serial", "text"), ("signer_trusted", "boolean"), ("problem", "text"))


def _archive_update(reprocess: bool) -> Any:
    arrays = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in _ARCHIVE_ARRAYS)
    names = ", ".join(name for name, _ in _ARCHIVE_ARRAYS)
    # a reprocess re-parses an archived message in place; a download archives only a message still pending
    only = "m.needs_reprocess" if reprocess else f"m.state <> '{domain.MessageState.ARCHIVED.value}'"
    return text(f"""
        UPDATE messages m SET state = '{domain.MessageState.ARCHIVED.value}',
            archived_at = COALESCE(m.archived_at, :now),
            attempts = m.attempts + :inc, last_attempt_at = :now, next_attempt_at = NULL,
            last_error = NULL, zip_key = v.zip_key, zip_sha256 = v.sha, zip_size = v.size,
            parse_status = v.parse_status, parse_error = v.parse_error, needs_reprocess = v.flagged,
            signature_status = v.sig_status, signature_detail = v.sig_detail,
            signer_subject = v.signer_subject, signer_sha256 = v.signer_sha, signature_shape = v.sig_shape,
            signer_serial = v.signer_serial, signer_trusted = v.signer_trusted, problem = v.problem
        FROM unnest({arrays}) AS v({names})
        WHERE m.cif = v.cif AND m.message_id = v.mid AND {only}
        RETURNING m.cif, m.message_id, m.tip, m.listed_at, m.upload_index, m.detalii""")


_ARCHIVE_UPDATE = {False: _archive_update(False), True: _archive_update(True)}


async def mark_archived(session: AsyncSession, facts: Sequence[ArchiveFacts], now: datetime, *,
                        reprocess: bool = False) -> dict[tuple[str, str], domain.ArchivedMessage]:
    """The archived transition of a batch, for the messages that had not made it yet (or, reprocessing, were
    flagged): returns those, keyed by (cif, message id)."""
    params: dict[str, Any] = {
        "now": now, "inc": 0 if reprocess else 1,
        "cif": [f.cif for f in facts], "mid": [f.message_id for f in facts], "zip_key": [f.zip_key for f in facts],
        "sha": [f.sha256 for f in facts], "size": [f.size for f in facts],
        "parse_status": [f.parse_status for f in facts], "parse_error": [f.parse_error for f in facts],
        "flagged": [f.parse_status != "ok" for f in facts], "sig_status": [f.signature_status for f in facts],
        "sig_detail": [f.signature_detail for f in facts], "signer_subject": [f.signer_subject for f in facts],
        "signer_sha": [f.signer_sha256 for f in facts], "sig_shape": [f.signature_shape for f in facts],
        "signer_serial": [f.signer_serial for f in facts], "signer_trusted": [f.signer_trusted for f in facts],
        "problem": [f.problem for f in facts]}
    res = await session.execute(_ARCHIVE_UPDATE[reprocess], params)
    return {(r.cif, r.message_id): domain.ArchivedMessage(r.cif, r.message_id, r.tip, r.listed_at, r.upload_index,
                                                          r.detalii) for r in res}


def refused_value(e: BaseException) -> str | None:
    """The database's reason when it refused a value (SQLSTATE class 22, data exception; 54000, e.g. an index
    entry too large), else None (connection trouble and the like: retried later as usual)."""
    if not isinstance(e, DBAPIError):
        return None
    orig = getattr(e, "orig", None)
    state = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
    if state.startswith("22") or state == "54000":
        return f"{state}: {str(orig)[:300]}"
    return None


def _capacity() -> dict[str, domain.ColumnCapacity]:
    out: dict[str, domain.ColumnCapacity] = {}
    for c in invoices.columns:
        if isinstance(c.type, Numeric):
            out[c.name] = domain.ColumnCapacity(precision=c.type.precision, scale=c.type.scale, numeric=True)
        elif isinstance(c.type, String):
            out[c.name] = domain.ColumnCapacity(length=c.type.length)
    out["number"] = domain.ColumnCapacity(indexed=500)  # text under a btree index
    return out


INVOICE_CAPACITY = _capacity()


@lru_cache(maxsize=4)
def _invoice_insert(dialect: Any) -> tuple[Any, list[tuple[str, Any, Callable[[Any], Any] | None]]]:
    """INSERT INTO invoices ... SELECT FROM unnest ON CONFLICT DO NOTHING RETURNING; with each column's default and
    SQLAlchemy bind processor (JSONB serialization), so values land as the ORM would write them."""
    cols = [c for c in invoices.columns if c.name not in ("id", "created_at")]
    columns = [(c.name, False if c.name == "self_billing" else None, c.type.bind_processor(dialect)) for c in cols]
    stmt = text(f"INSERT INTO invoices ({', '.join(c.name for c in cols)}) SELECT * FROM {_unnest(dialect, cols)} "
                "ON CONFLICT ON CONSTRAINT uq_invoices_cif_message DO NOTHING RETURNING id, cif, message_id")
    return stmt, columns


async def insert_invoices(session: AsyncSession, rows: Sequence[domain.InvoiceRow]) -> dict[tuple[str, str], int]:
    """One INSERT for the batch's rows; returns the ids of the rows inserted now, keyed by (cif, message id)."""
    stmt, columns = _invoice_insert(session.get_bind().dialect)
    params: dict[str, list[Any]] = {}
    for name, default, process in columns:
        values = [getattr(r, name, default) for r in rows]
        params[name] = [process(v) for v in values] if process is not None else values
    res = await session.execute(stmt, params)
    return {(r.cif, r.message_id): r.id for r in res}


async def note_fields_not_stored(session: AsyncSession, unstored: Mapping[tuple[str, str], str]) -> None:
    """Add `fields_not_stored: ...` to the ledger's problem of these messages."""
    await session.execute(text(
        "UPDATE messages m SET problem = concat_ws('; ', m.problem, 'fields_not_stored: ' || v.problem) "
        "FROM unnest(CAST(:cif AS text[]), CAST(:mid AS text[]), CAST(:problem AS text[])) "
        "AS v(cif, mid, problem) WHERE m.cif = v.cif AND m.message_id = v.mid"),
        {"cif": [k[0] for k in unstored], "mid": [k[1] for k in unstored], "problem": list(unstored.values())})


async def take_expiring(session: AsyncSession, cif: str, now: datetime, horizon: datetime) -> list[Expiring]:
    """Pending messages purged before `horizon` and not announced yet: marked announced, returned."""
    rows = (await session.execute(
        update(messages).where(messages.c.cif == cif, messages.c.state.in_(PENDING),
                               messages.c.purge_at <= horizon, messages.c.expiring_notified_at.is_(None))
        .values(expiring_notified_at=now)
        .returning(messages.c.message_id, messages.c.purge_at, messages.c.last_error))).all()
    return [Expiring(*r) for r in rows]
