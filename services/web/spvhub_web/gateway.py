"""The web's only way out: the public gateway API, called with the person's own token. A 401 on an expired
access token is answered once by rotating the refresh token (saved back into the session cookie).

Every call carries the person's address as X-Forwarded-For (set per request by the web's middleware from what its
trusted proxies said): the gateway, which trusts the web, rate-limits the person and not the web, and auth records
and throttles the person's address."""
from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import httpx

from spvhub_web.session import Session

# The address of the person the current request is for (None outside a request: then nothing is forwarded).
client_address: ContextVar[str | None] = ContextVar("spvhub_web_client_address", default=None)


async def _forward_client(request: httpx.Request) -> None:
    # replaces anything a caller set: only the address the web itself resolved is ever passed on
    addr = client_address.get()
    if addr:
        request.headers["x-forwarded-for"] = addr
    else:
        request.headers.pop("x-forwarded-for", None)


class ApiError(Exception):
    """A refusal from the platform: its stable code, English message and details, and the HTTP status."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details or {}


class NotSignedIn(Exception):
    """The session has no usable token (never had one, or the refresh token was refused)."""


def error_of(r: httpx.Response) -> ApiError:
    try:
        err = r.json().get("error") or {}
    except ValueError:
        err = {}
    code = err.get("code") or ("unauthorized" if r.status_code == 401 else f"http_{r.status_code}")
    return ApiError(r.status_code, str(code), str(err.get("message") or r.reason_phrase), err.get("details") or {})


class Gateway:
    def __init__(self, base_url: str, timeout: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, follow_redirects=False,
                                      transport=transport, event_hooks={"request": [_forward_client]})

    async def aclose(self) -> None:
        await self.http.aclose()

    async def raw(self, method: str, path: str, session: Session | None = None, *, auth: bool = True,
                  request_id: str | None = None, **kw: Any) -> httpx.Response:
        """One call; with `auth` the session's token is sent and refreshed once on 401."""
        headers = dict(kw.pop("headers", None) or {})
        headers.setdefault("accept", "application/json")
        if request_id:
            headers["x-request-id"] = request_id
        if not auth or session is None:
            return await self.http.request(method, path, headers=headers, **kw)
        token = session.get("access_token")
        if not token:
            raise NotSignedIn()
        r = await self.http.request(method, path, headers={**headers, "authorization": f"Bearer {token}"}, **kw)
        if r.status_code != 401:
            return r
        if not await self._refresh(session):
            raise NotSignedIn()
        return await self.http.request(method, path, headers={**headers,
                                       "authorization": f"Bearer {session.get('access_token')}"}, **kw)

    async def _refresh(self, session: Session) -> bool:
        rt = session.get("refresh_token")
        if not rt:
            session.sign_out()
            return False
        r = await self.http.post("/api/auth/token/refresh", json={"refresh_token": rt})
        if r.status_code != 200:
            session.sign_out()
            return False
        body = r.json()
        session.set(access_token=body["access_token"], refresh_token=body.get("refresh_token", rt))
        return True

    async def call(self, method: str, path: str, session: Session | None = None, *, ok: tuple[int, ...] = (),
                   **kw: Any) -> Any:
        """A JSON call: the parsed body on 2xx (None on 204), ApiError otherwise."""
        r = await self.raw(method, path, session, **kw)
        if 200 <= r.status_code < 300 or r.status_code in ok:
            return None if r.status_code == 204 or not r.content else r.json()
        raise error_of(r)
