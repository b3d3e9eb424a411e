"""Idempotent consumption: claim (consumer, event id) in the handler's own transaction."""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def claim(session: AsyncSession, consumer: str, event_id: str) -> bool:
    """True when this consumer sees the event for the first time; the insert commits with the effects,
    so a crash before commit leaves no claim and the redelivered event is processed again."""
    res = await session.execute(
        text("INSERT INTO inbox (consumer, event_id) VALUES (:c, :e) ON CONFLICT DO NOTHING RETURNING 1"),
        {"c": consumer, "e": event_id})
    return res.scalar() is not None
