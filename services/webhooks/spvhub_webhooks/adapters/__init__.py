"""Adapters of the webhooks service: tables and the HTTP sender."""
