"""The whole-system chaos run on demand: `python tools/chaos.py` (short form) or `--full` (20 companies, about
6,000 invoices); prints the figures. It starts its own PostgreSQL, Kafka and MinIO (see tests/chaos)."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "chaos"), str(ROOT / "tests" / "e2e")]

from chaos_run import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
