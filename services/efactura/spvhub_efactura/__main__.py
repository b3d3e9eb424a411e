"""`python -m spvhub_efactura` runs HTTP, consumers, outbox relay and jobs; `... migrate` applies migrations."""
from __future__ import annotations

from pathlib import Path

from spvhub_common.runtime import run_main

from spvhub_efactura.bootstrap import build_app
from spvhub_efactura.settings import get_settings

if __name__ == "__main__":
    run_main(get_settings(), Path(__file__).parent / "migrations", build_app)
