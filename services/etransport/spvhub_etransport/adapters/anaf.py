"""ANAF e-Transport reads the carrier view needs (`info?cui_op=`, `lista/{zile}/{cif}`), spending the shared
call budget and mapping ANAF's wording onto spvhub_common.anaf.errors.

Interim adapter: the shared ANAF client (spvhub_common.anaf) has no e-Transport calls yet; this one uses the
same budget port and error classifier so swapping it for the shared client changes only bootstrap.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from spvhub_common.anaf.budget import AnafBudget, BudgetKind
from spvhub_common.anaf.clock import next_local_midnight
from spvhub_common.anaf.errors import (
    AnafError,
    AnafUnavailable,
    DailyLimitReached,
    NoMessages,
    RateLimited,
    Unauthorized,
    UnexpectedResponse,
    ValidationError,
    classify_text,
    is_waf_page,
    waf_error,
)


class EtransportApi(Protocol):
    """The port: ANAF's e-Transport reads, called with an access token of a connection that has rights on `cif`."""

    async def info(self, token: str, cui_op: str, *, uit: str | None = None) -> list[dict[str, Any]]:
        """Active notifications where `cui_op` is the carrier; [] when ANAF has none."""

    async def lista(self, token: str, cif: str, zile: int) -> list[dict[str, Any]]:
        """The declarant's list of the last `zile` days; [] when ANAF has none."""


class HttpEtransportApi:
    def __init__(self, client: httpx.AsyncClient, base_url: str, env: str = "test",
                 budget: AnafBudget | None = None, now: Callable[[], datetime] | None = None) -> None:
        self.client = client
        self.now = now or (lambda: datetime.now(UTC))
        self.base = f"{base_url.rstrip('/')}/{env}/ETRANSPORT/ws/v1"
        self.budget = budget

    async def _get(self, endpoint: str, path: str, token: str, params: dict[str, str] | None,
                   kind: str, key: str) -> Any:
        if self.budget is not None:
            await self.budget.acquire(kind, key)
        try:
            resp = await self.client.get(self.base + path, params=params,
                                         headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise AnafUnavailable(f"{type(exc).__name__}: {exc}", endpoint=endpoint) from exc
        text = resp.text
        if is_waf_page(text):
            raise waf_error(text, endpoint=endpoint, status=resp.status_code)
        if resp.status_code in (401, 403) or resp.status_code == 302:
            raise Unauthorized(text[:300] or "unauthorized", endpoint=endpoint, status=resp.status_code)
        if resp.status_code == 429:
            ra = resp.headers.get("Retry-After")
            raise RateLimited(text[:300] or "Too Many Requests", retry_after=float(ra) if ra else None,
                              endpoint=endpoint)
        if resp.status_code >= 500:
            raise AnafUnavailable(text[:300] or f"HTTP {resp.status_code}", endpoint=endpoint,
                                  status=resp.status_code)
        try:
            body = resp.json()
        except ValueError as exc:
            raise UnexpectedResponse(text[:300], endpoint=endpoint, status=resp.status_code) from exc
        if resp.status_code == 400:
            msg = body.get("message") or body.get("error") if isinstance(body, dict) else None
            raise ValidationError(str(msg or text[:300]), endpoint=endpoint, status=400)
        if resp.status_code >= 300:
            raise UnexpectedResponse(text[:300], endpoint=endpoint, status=resp.status_code)
        return body

    async def _raise(self, text: str, endpoint: str, cif: str, kind: str) -> AnafError:
        err = classify_text(text, endpoint=endpoint, cif=cif, limit_scope=f"{kind}:{cif}")
        if isinstance(err, DailyLimitReached):
            # ANAF says the day's cap is spent: stop every replica until local midnight, never retry blindly
            if err.resets_at is None:
                err.resets_at = next_local_midnight(self.now())
            if self.budget is not None:
                await self.budget.mark_exhausted(kind, cif, err.resets_at)
        return err

    async def info(self, token: str, cui_op: str, *, uit: str | None = None) -> list[dict[str, Any]]:
        params = {"cui_op": cui_op}
        if uit:
            params["uit"] = uit
        body = await self._get("etransport.info", "/info", token, params, BudgetKind.ET_INFO, cui_op)
        if isinstance(body, list):
            return [x for x in body if isinstance(x, dict)]
        if isinstance(body, dict) and body.get("error"):
            err = await self._raise(str(body["error"]), "etransport.info", cui_op, BudgetKind.ET_INFO)
            if isinstance(err, NoMessages):
                return []
            raise err
        raise UnexpectedResponse(str(body)[:300], endpoint="etransport.info")

    async def lista(self, token: str, cif: str, zile: int) -> list[dict[str, Any]]:
        body = await self._get("etransport.lista", f"/lista/{int(zile)}/{cif}", token, None,
                               BudgetKind.ET_LIST, cif)
        if not isinstance(body, dict):
            raise UnexpectedResponse(str(body)[:300], endpoint="etransport.lista")
        errors = body.get("Errors") or []
        if errors:
            text = "; ".join(str(e.get("errorMessage", e)) if isinstance(e, dict) else str(e) for e in errors)
            err = await self._raise(text, "etransport.lista", cif, BudgetKind.ET_LIST)
            if isinstance(err, NoMessages):
                return []
            raise err
        items = body.get("mesaje") or []
        return [x for x in items if isinstance(x, dict)]
