"""efactura tests: make the test kit importable (tests/ has no package)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
