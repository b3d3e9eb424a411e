"""Async SQLAlchemy 2.0 engines and sessions (asyncpg); databases are created on demand per service."""
from __future__ import annotations

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from spvhub_common.settings import ServiceSettings


def create_engine(settings: ServiceSettings, database: str | None = None, **kw: object) -> AsyncEngine:
    return create_async_engine(settings.dsn(database), pool_size=settings.pg_pool_size, max_overflow=10,
                               pool_pre_ping=True, **kw)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ensure_database(settings: ServiceSettings, database: str | None = None) -> None:
    """Create the service database if it does not exist (idempotent, safe under races)."""
    name = database or settings.database_name
    conn = await asyncpg.connect(host=settings.pg_host, port=settings.pg_port, user=settings.pg_user,
                                 password=settings.pg_password.get_secret_value() or None, database="postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname=$1", name):
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                # two processes racing past the check: PostgreSQL reports the loser either way (the second as a
                # unique violation on pg_database's name index when both inserts overlap)
                pass
    finally:
        await conn.close()


async def drop_database(settings: ServiceSettings, database: str) -> None:
    conn = await asyncpg.connect(host=settings.pg_host, port=settings.pg_port, user=settings.pg_user,
                                 password=settings.pg_password.get_secret_value() or None, database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()
