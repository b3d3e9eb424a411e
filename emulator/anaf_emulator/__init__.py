"""Offline emulator of ANAF's OAuth2, e-Factura, e-Transport, SPV and public registry web APIs."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def create_app(scenario: Any = "minimal.json", **switches: Any) -> Any:
    """Build the FastAPI app for a scenario (path, shipped name, or dict); see emulator/README.md."""
    from .app import create_app as _create_app

    return _create_app(scenario, **switches)
