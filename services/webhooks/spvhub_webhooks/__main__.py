"""`python -m spvhub_webhooks` runs HTTP, consumers, outbox relay and the sender; `... migrate` applies migrations."""
from __future__ import annotations

from pathlib import Path

from spvhub_common.runtime import run_main

from spvhub_webhooks.bootstrap import build_app
from spvhub_webhooks.settings import get_settings

if __name__ == "__main__":
    run_main(get_settings(), Path(__file__).parent / "migrations", build_app)
