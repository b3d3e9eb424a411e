"""Apply a service's Alembic migrations (creating its database first); used by `python -m <pkg> migrate`."""
from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from spvhub_common.db import ensure_database
from spvhub_common.settings import ServiceSettings


def alembic_config(settings: ServiceSettings, migrations_dir: Path, database: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", settings.dsn(database).replace("%", "%%"))
    return cfg


def upgrade(settings: ServiceSettings, migrations_dir: Path, database: str | None = None,
            revision: str = "head") -> None:
    asyncio.run(ensure_database(settings, database))
    command.upgrade(alembic_config(settings, migrations_dir, database), revision)


async def upgrade_async(settings: ServiceSettings, migrations_dir: Path, database: str | None = None) -> None:
    """For tests and async callers: runs Alembic (which itself uses asyncio.run) in a worker thread."""
    await ensure_database(settings, database)
    await asyncio.to_thread(command.upgrade, alembic_config(settings, migrations_dir, database), "head")
