"""Application factory: one FastAPI app serving every ANAF host's paths under one base URL."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def create_app(scenario: Any = "minimal.json", admin: bool = True, **switches: Any) -> FastAPI:
    app = FastAPI(title="ANAF emulator", docs_url=None, redoc_url=None, openapi_url=None)
    return app
