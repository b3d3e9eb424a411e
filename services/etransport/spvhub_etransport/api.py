"""HTTP API of the etransport service: request -> command -> handler; no SQL, no business rules."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/etransport", tags=["etransport"])
