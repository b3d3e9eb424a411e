"""Client of auth's internal account-link endpoint: the link of a verification, change-of-address or password
reset e-mail, fetched when the e-mail is sent (the token never travels on Kafka and is stored nowhere here)."""
from __future__ import annotations

from typing import Any, Protocol

import httpx

from spvhub_notifier.adapters.invitations_client import fetch_link


class AccountLinks(Protocol):
    async def link(self, request_id: str) -> dict[str, Any]:
        """`{"link", "expires_at", "email", "purpose"}`, or LinkGone (used, replaced, expired)."""


class HttpAccountLinks:
    def __init__(self, base_url: str, service_token: str, client: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.service_token = service_token
        self.client = client

    async def link(self, request_id: str) -> dict[str, Any]:
        return await fetch_link(self.client, f"{self.base_url}/internal/account-links/{request_id}",
                                self.service_token)
