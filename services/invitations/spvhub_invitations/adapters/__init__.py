"""Adapters of the invitations service: ORM tables, repositories, clients."""
