"""Alembic environment of the portfolio service."""
from spvhub_common.alembic_env import run
from spvhub_portfolio.adapters.orm import metadata

run(metadata)
