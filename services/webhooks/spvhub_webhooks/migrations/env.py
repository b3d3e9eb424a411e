"""Alembic environment of the webhooks service."""
from spvhub_common.alembic_env import run
from spvhub_webhooks.adapters.orm import metadata

run(metadata)
