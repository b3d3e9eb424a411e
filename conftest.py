"""Root pytest configuration: the shared fixtures of the real stack (see spvhub_devtools.testing)."""
pytest_plugins = ["spvhub_devtools.testing"]
