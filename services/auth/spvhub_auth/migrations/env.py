"""Alembic environment of the auth service."""
from spvhub_common.alembic_env import run
from spvhub_auth.adapters.orm import metadata

run(metadata)
