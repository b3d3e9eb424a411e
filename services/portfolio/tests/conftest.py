"""pytest fixtures of the portfolio tests. The kit lives in pfkit.py beside this file; the repository runs pytest
with --import-mode=importlib, so this directory is put on sys.path for the test modules that import it."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pfkit import env  # noqa: E402,F401
