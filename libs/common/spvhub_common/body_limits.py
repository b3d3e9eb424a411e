"""Request body limits: the endpoints that take a file accept more than the default. Each service enforces its
rows (`spvhub_common.http.create_app`) and the gateway renders the same table (`spvhub_devtools.gateway_conf`), so
the two cannot disagree."""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class BodyLimit:
    """An endpoint that takes a file and so accepts a larger request body than the default. `path` is the route
    template (`{cif}` = one path segment); the service and the gateway both enforce `max_bytes`."""

    method: str
    path: str
    service: str
    max_bytes: int

    @property
    def regex(self) -> str:
        return "^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(self.path)) + "$"


MIB = 1024 * 1024
DEFAULT_BODY_LIMIT = 1 * MIB   # JSON bodies: the largest (a bulk of 500 invitations) is well under it
BODY_LIMITS: tuple[BodyLimit, ...] = (
    # ANAF accepts invoice XML up to 10 MB; the margin is for a multipart envelope and its form fields.
    BodyLimit("POST", "/api/efactura/companies/{cif}/submissions", "efactura", 11 * MIB),
    # The candidates CSV is refused past 2 MB by the endpoint itself (payload_too_large).
    BodyLimit("POST", "/api/portfolio/companies/{cif}/candidates", "portfolio", 2 * MIB + 64 * 1024),
)


def body_limits_of(service: str) -> list[BodyLimit]:
    return [b for b in BODY_LIMITS if b.service == service]
