"""spvhub web: server-rendered screens for people, built only on the public gateway API."""
