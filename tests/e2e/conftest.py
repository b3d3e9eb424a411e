"""The isolated system shared by the end-to-end tests of one session (see system.py)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from system import System


@pytest.fixture(scope="session")
def system(postgres_up: None, kafka_up: str, minio_up: None) -> Iterator[System]:
    s = System()
    try:
        s.start()
        yield s
    finally:
        s.stop()
