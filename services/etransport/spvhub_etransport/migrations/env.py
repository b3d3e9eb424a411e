"""Alembic environment of the etransport service."""
from spvhub_common.alembic_env import run
from spvhub_etransport.adapters.orm import metadata

run(metadata)
