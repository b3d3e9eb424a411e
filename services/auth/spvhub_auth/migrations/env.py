"""Alembic environment of the auth service."""
from spvhub_auth.adapters.orm import metadata
from spvhub_common.alembic_env import run

run(metadata)
