"""HTTP API of the auth service: request -> command -> handler; no SQL, no business rules."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/auth", tags=["auth"])
