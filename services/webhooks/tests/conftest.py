"""pytest fixtures of the webhooks tests (defined in whkit; this directory is put on sys.path because the suite
runs with --import-mode=importlib)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from whkit import env  # noqa: E402,F401
