"""The chaos run's modules beside its test; the `chaos` marker (select with `-m chaos`, skip with `-m 'not chaos'`)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for p in (HERE, HERE.parent / "e2e"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: the whole-system chaos run (own PostgreSQL, Kafka and MinIO)")
