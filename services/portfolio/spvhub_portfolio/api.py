"""HTTP API of the portfolio service: request -> command -> handler; no SQL, no business rules."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/portfolio", tags=["portfolio"])
