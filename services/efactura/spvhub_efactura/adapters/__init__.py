"""Adapters of the efactura service: ORM tables, repositories, clients."""
