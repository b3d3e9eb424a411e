"""Unit of work on an async SQLAlchemy session: rollback by default, events written to the outbox at commit.

An event leaves a service only through the outbox row written in the same transaction as the state change.
"""
from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from spvhub_common.events import Event, encode, to_envelope
from spvhub_common.telemetry import current_traceparent


class SqlUnitOfWork:
    """`async with uow:` opens a transaction; `uow.publish(event)` queues an event; `await uow.commit()`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], outbox: Table, source: str,
                 on_commit: Callable[[], None] | None = None) -> None:
        self._sessions = sessions
        self._outbox = outbox
        self.source = source
        self._on_commit = on_commit
        self.session: AsyncSession
        self._events: list[tuple[Event, str | None, str | None]] = []
        self.published: list[dict[str, Any]] = []

    async def __aenter__(self) -> SqlUnitOfWork:
        self.session = self._sessions()
        self._events = []
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            await self.session.rollback()  # no-op after a commit; undoes everything otherwise
        finally:
            await self.session.close()

    def publish(self, event: Event, event_id: str | None = None, *, traceparent: str | None = None) -> None:
        """Queue an event; `event_id` (the CloudEvents id) may be chosen by the caller, e.g. to record it
        in a ledger of its own. Ids are unique in the outbox. The event carries the trace context current
        here (or `traceparent`, for a transaction that commits the work of several traces at once)."""
        self._events.append((event, event_id, traceparent or current_traceparent()))

    async def flush_events(self) -> None:
        """Write queued events as outbox rows inside the current transaction."""
        if not self._events:
            return
        rows = []
        for ev, event_id, tp in self._events:
            env = to_envelope(ev, self.source, traceparent=tp, event_id=event_id)
            rows.append({"event_id": env.id, "topic": ev.topic, "key": ev.partition_key(),
                         "payload": encode(env), "headers": {"traceparent": tp} if tp else {}})
        await self.session.execute(insert(self._outbox), rows)
        self.published.extend(rows)
        self._events = []

    async def commit(self) -> None:
        await self.flush_events()
        await self.session.commit()
        if self._on_commit and self.published:
            self._on_commit()

    async def rollback(self) -> None:
        self._events = []
        await self.session.rollback()
