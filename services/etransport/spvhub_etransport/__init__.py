"""spvhub etransport service."""
