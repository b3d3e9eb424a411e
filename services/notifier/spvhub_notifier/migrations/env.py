"""Alembic environment of the notifier service."""
from spvhub_common.alembic_env import run
from spvhub_notifier.adapters.orm import metadata

run(metadata)
