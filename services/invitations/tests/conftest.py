"""pytest fixtures of the invitations tests (defined in invkit; this directory is put on sys.path because the suite
runs with --import-mode=importlib)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from invkit import env  # noqa: E402,F401
