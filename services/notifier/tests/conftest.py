"""pytest fixtures of the notifier tests (defined in ntfkit)."""
from ntfkit import stack  # noqa: F401
