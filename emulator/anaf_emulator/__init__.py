"""Offline emulator of the ANAF web APIs (OAuth, e-Factura, e-Transport, public registries)."""
