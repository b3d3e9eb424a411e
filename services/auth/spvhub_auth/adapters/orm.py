"""Tables of the auth service (SQLAlchemy Core); the Alembic history in migrations/ follows this file."""
from __future__ import annotations

from sqlalchemy import MetaData

from spvhub_common.access import access_table
from spvhub_common.messaging import add_messaging_tables

metadata = MetaData()
outbox, inbox = add_messaging_tables(metadata)
access_grants = access_table(metadata)
