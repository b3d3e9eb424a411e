"""HTTP API of the efactura service: request -> command -> handler; no SQL, no business rules."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/efactura", tags=["efactura"])
