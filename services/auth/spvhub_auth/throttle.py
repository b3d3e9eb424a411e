"""Throttling of the unauthenticated entry points of auth: password login, token refresh, delegation-link opening.

Counters live in `login_throttle` (key, window start, count): one row per key and fixed window, bumped in one
atomic upsert in its own transaction, so a refusal still counts and concurrent requests cannot slip past.
Keys: `ip:<address>` failed logins of a client address, `refresh-ip:` / `refresh-user:` refresh attempts,
`deleg-ip:` / `deleg:` delegation-link openings. The client address is the one `spvhub_common.clientaddr`
resolves (X-Forwarded-For only from a trusted proxy).

An account is never locked: consecutive failures make its next attempt wait (1, 2, 4 ... seconds, capped), so an
attacker is slowed down and the real owner, from any address, gets in once the short delay has passed.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from spvhub_common.errors import TooManyRequests
from spvhub_common.uow import SqlUnitOfWork
from sqlalchemy import case, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from spvhub_auth.adapters.orm import login_throttle


def _retry(seconds: float) -> int:
    return max(1, int(seconds + 0.999))


async def hit(uow: SqlUnitOfWork, key: str, now: datetime, window_seconds: int) -> tuple[int, datetime]:
    """Count one event for `key` in its current window; returns (count so far, window start)."""
    window = timedelta(seconds=window_seconds)
    expired = login_throttle.c.window_start <= now - window
    stmt = pg_insert(login_throttle).values(key=key[:200], window_start=now, failures=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={"window_start": case((expired, now), else_=login_throttle.c.window_start),
              "failures": case((expired, 1), else_=login_throttle.c.failures + 1)},
    ).returning(login_throttle.c.failures, login_throttle.c.window_start)
    row = (await uow.session.execute(stmt)).one()
    return int(row.failures), row.window_start


async def limit(uow_factory: Any, now: datetime, checks: list[tuple[str, int, int]], *, message: str) -> None:
    """Count one attempt on every (key, max per window, window seconds) and refuse (429 `rate_limited`, with
    Retry-After) when any of them is over its limit. Committed on its own: the refused attempt counts too."""
    retry = 0
    async with uow_factory() as uow:
        for key, max_count, window_seconds in checks:
            count, start = await hit(uow, key, now, window_seconds)
            if count > max_count:
                retry = max(retry, _retry((start + timedelta(seconds=window_seconds) - now).total_seconds()))
        await uow.commit()
    if retry:
        raise TooManyRequests(message.format(retry=retry), code="rate_limited",
                              details={"retry_after_seconds": retry})


async def failures_of(uow: SqlUnitOfWork, key: str, now: datetime, window_seconds: int) -> tuple[int, datetime | None]:
    """Failures counted for `key` in its current window (0 when the window is over)."""
    row = (await uow.session.execute(select(login_throttle).where(login_throttle.c.key == key[:200]))).first()
    if row is None or row.window_start <= now - timedelta(seconds=window_seconds):
        return 0, None
    return int(row.failures), row.window_start


async def account_state(uow: SqlUnitOfWork, email: str) -> Any:
    """The failure row of one e-mail (locked for this attempt). Keyed by the e-mail, existing or not, so the
    slowdown does not tell which addresses have accounts."""
    return (await uow.session.execute(select(login_throttle).where(login_throttle.c.key == account_key(email))
                                      .with_for_update())).first()


def account_key(email: str) -> str:
    return "acct:" + hashlib.sha256(email.encode()).hexdigest()[:40]


async def account_failed(uow: SqlUnitOfWork, email: str, row: Any, now: datetime, *, free: int, base: float,
                         cap: float, memory_seconds: int) -> float:
    """Record one more consecutive failure of `email`; returns the delay before its next attempt is heard.
    `window_start` holds the time the next attempt is allowed; failures older than `memory_seconds` are forgotten."""
    prev = int(row.failures) if row is not None and row.window_start > now - timedelta(seconds=memory_seconds) else 0
    failures = prev + 1
    delay = account_delay(failures, free=free, base=base, cap=cap)
    stmt = pg_insert(login_throttle).values(key=account_key(email), failures=failures,
                                            window_start=now + timedelta(seconds=delay))
    await uow.session.execute(stmt.on_conflict_do_update(
        index_elements=["key"], set_={"failures": failures, "window_start": now + timedelta(seconds=delay)}))
    return delay


async def account_succeeded(uow: SqlUnitOfWork, email: str) -> None:
    await uow.session.execute(delete(login_throttle).where(login_throttle.c.key == account_key(email)))


def account_delay(failures: int, *, free: int, base: float, cap: float) -> float:
    """Seconds an account waits after `failures` consecutive failed logins: none for the first `free`, then
    base, 2*base, 4*base ... up to `cap`."""
    if failures < free:
        return 0.0
    return float(min(cap, base * (2 ** min(failures - free, 30))))


async def purge(uow: SqlUnitOfWork, now: datetime, older_than_seconds: int) -> int:
    """Drop counters whose window ended long ago (the table only ever holds recent keys)."""
    res = await uow.session.execute(delete(login_throttle).where(
        login_throttle.c.window_start < now - timedelta(seconds=older_than_seconds)))
    return int(res.rowcount or 0)
