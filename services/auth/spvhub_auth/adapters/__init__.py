"""Adapters of the auth service: ORM tables, repositories, clients."""
