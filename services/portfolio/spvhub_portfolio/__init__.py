"""spvhub portfolio service."""
