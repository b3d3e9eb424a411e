"""Client of auth's internal account-link endpoint: the link of a verification, change-of-address or password
reset e-mail, fetched when the e-mail is sent (the token never travels on Kafka and is stored nowhere here)."""
from __future__ import annotations

from typing import Any, Protocol

import httpx

from spvhub_notifier.adapters.invitations_client import LinkGone, LinkUnavailable


class AccountLinks(Protocol):
    async def link(self, request_id: str) -> dict[str, Any]:
        """`{"link", "expires_at", "email", "purpose"}`, or LinkGone (used, replaced, expired)."""


class HttpAccountLinks:
    def __init__(self, base_url: str, service_token: str, client: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.service_token = service_token
        self.client = client

    async def link(self, request_id: str) -> dict[str, Any]:
        headers = {"X-Service-Token": self.service_token, "X-Service-Name": "notifier"}
        url = f"{self.base_url}/internal/account-links/{request_id}"
        try:
            if self.client is not None:
                resp = await self.client.get(url, headers=headers)
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
