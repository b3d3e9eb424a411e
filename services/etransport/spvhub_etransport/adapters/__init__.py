"""Adapters of the etransport service: ORM tables, repositories, clients."""
