"""Adapters of the notifier service: ORM tables, repositories, clients."""
