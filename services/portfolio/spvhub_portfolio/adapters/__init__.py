"""Adapters of the portfolio service: ORM tables, repositories, clients."""
