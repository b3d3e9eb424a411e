"""Root pytest configuration: the shared fixtures of the real stack (see spvhub_common.testing)."""
pytest_plugins = ["spvhub_common.testing"]
