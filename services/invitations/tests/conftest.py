"""pytest fixtures of the invitations tests (defined in invkit)."""
from invkit import env  # noqa: F401
