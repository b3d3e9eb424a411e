"""Throttling of the unauthenticated entry points of auth: password login, token refresh, delegation-link opening,
the public requests that e-mail a link.

Counters live in `login_throttle` (key, window start, count): one row per key and fixed window, bumped in one
atomic upsert in its own transaction, so a refusal still counts and concurrent requests cannot slip past.
Keys: `ip:<address>` failed logins of a client address, `refresh-ip:` / `refresh-user:` refresh attempts,
`deleg-ip:` / `deleg:` delegation-link openings, `mail-ip:` / `mail:` account e-mails. The client address is the
one `spvhub_common.clientaddr` resolves (X-Forwarded-For only from a trusted proxy).

An account is never locked: consecutive failures make its next attempt wait (1, 2, 4 ... seconds, capped), so an
attacker is slowed down and the real owner, from any address, gets in once the short delay has passed.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from spvhub_common.errors import TooManyRequests
from spvhub_common.uow import SqlUnitOfWork

from spvhub_auth import domain
from spvhub_auth.adapters import repository as repo


def _retry(seconds: float) -> int:
    return max(1, int(seconds + 0.999))


async def hit(uow: SqlUnitOfWork, key: str, now: datetime, window_seconds: int) -> tuple[int, datetime]:
    """Count one event for `key` in its current window; returns (count so far, window start)."""
    return await repo.throttle_hit(uow.session, key, now, window_seconds)


async def limit(uow_factory: Callable[[], SqlUnitOfWork], now: datetime, checks: list[tuple[str, int, int]], *,
                message: str) -> None:
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
    row = await repo.throttle_counter(uow.session, key)
    if row is None or row.window_start <= now - timedelta(seconds=window_seconds):
        return 0, None
    return int(row.failures), row.window_start


async def account_state(uow: SqlUnitOfWork, email: str) -> repo.ThrottleCounter | None:
    """The failure row of one e-mail (locked for this attempt). Keyed by the e-mail, existing or not, so the
    slowdown does not tell which addresses have accounts."""
    return await repo.throttle_counter(uow.session, domain.account_throttle_key(email), for_update=True)


async def account_failed(uow: SqlUnitOfWork, email: str, row: repo.ThrottleCounter | None, now: datetime, *,
                         free: int, base: float, cap: float, memory_seconds: int) -> float:
    """Record one more consecutive failure of `email`; returns the delay before its next attempt is heard.
    `window_start` holds the time the next attempt is allowed; failures older than `memory_seconds` are forgotten."""
    prev = int(row.failures) if row is not None and row.window_start > now - timedelta(seconds=memory_seconds) else 0
    failures = prev + 1
    delay = domain.account_delay(failures, free=free, base=base, cap=cap)
    await repo.throttle_set(uow.session, domain.account_throttle_key(email), failures,
                            now + timedelta(seconds=delay))
    return delay


async def account_succeeded(uow: SqlUnitOfWork, email: str) -> None:
    await repo.throttle_clear(uow.session, domain.account_throttle_key(email))


async def purge(uow: SqlUnitOfWork, now: datetime, older_than_seconds: int) -> int:
    """Drop counters whose window ended long ago (the table only ever holds recent keys)."""
    return await repo.throttle_purge(uow.session, now - timedelta(seconds=older_than_seconds))
