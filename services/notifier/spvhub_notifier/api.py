"""HTTP API of the notifier service: request -> command -> handler; no SQL, no business rules."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/notifier", tags=["notifier"])
