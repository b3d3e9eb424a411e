"""Alembic environment of the efactura service."""
from spvhub_common.alembic_env import run
from spvhub_efactura.adapters.orm import metadata

run(metadata)
