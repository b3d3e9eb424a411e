"""spvhub notifier service."""
