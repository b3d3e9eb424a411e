"""The chaos run's short form: a few companies, the same fault kinds as the full run (python tools/chaos.py --full).
It starts and restarts its own PostgreSQL, Kafka and MinIO, never the shared ones."""
from __future__ import annotations

import pytest
from chaos_run import SHORT, main_run, print_report

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]


def test_the_system_loses_and_duplicates_nothing_under_faults_kills_and_restarts() -> None:
    report = main_run(SHORT)
    print_report(report)
    assert not report["failures"], "\n".join(report["failures"])
