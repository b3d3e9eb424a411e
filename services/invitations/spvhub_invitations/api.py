"""HTTP API of the invitations service: request -> command -> handler; no SQL, no business rules."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/invitations", tags=["invitations"])
