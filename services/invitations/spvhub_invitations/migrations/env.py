"""Alembic environment of the invitations service."""
from spvhub_common.alembic_env import run
from spvhub_invitations.adapters.orm import metadata

run(metadata)
