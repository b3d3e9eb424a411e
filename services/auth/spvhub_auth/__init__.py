"""spvhub auth service."""
