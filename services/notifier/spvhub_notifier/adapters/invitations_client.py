"""Client of the invitations service's internal link endpoint (the token never travels on Kafka)."""
from __future__ import annotations

from typing import Any, Protocol

import httpx


class LinkGone(Exception):
    """The invitation can no longer be used (claimed, revoked, expired, unknown): do not send its e-mail."""


class LinkUnavailable(Exception):
    """invitations did not answer usefully now: retry later."""


class InvitationLinks(Protocol):
    async def link(self, invitation_id: str) -> dict[str, Any]:
        """`{"link", "expires_at", "email", "name", "firm_name", "client_name", ...}` or LinkGone."""


async def fetch_link(client: httpx.AsyncClient | None, url: str, service_token: str) -> dict[str, Any]:
    """GET an internal link endpoint as the notifier: 404/410 -> LinkGone, any other failure -> LinkUnavailable."""
    headers = {"X-Service-Token": service_token, "X-Service-Name": "notifier"}
    try:
        if client is not None:
            resp = await client.get(url, headers=headers)
        else:
            async with httpx.AsyncClient(timeout=10) as c:
                resp = await c.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise LinkUnavailable(f"{type(exc).__name__}: {exc}") from exc
    if resp.status_code in (404, 410):
        raise LinkGone(resp.text[:300])
    if resp.status_code != 200:
        raise LinkUnavailable(f"HTTP {resp.status_code}: {resp.text[:300]}")
    return dict(resp.json())


class HttpInvitationLinks:
    def __init__(self, base_url: str, service_token: str, client: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.service_token = service_token
        self.client = client

    async def link(self, invitation_id: str) -> dict[str, Any]:
        return await fetch_link(self.client, f"{self.base_url}/internal/invitations/{invitation_id}/link",
                                self.service_token)
