"""pytest fixtures of the portfolio tests (defined in pfkit)."""
from pfkit import env  # noqa: F401
