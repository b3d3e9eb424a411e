"""The production ANAF client: OAuth, e-Factura, e-Transport and the public registries over httpx.

Every request first spends the shared `AnafBudget`, then is classified into typed errors; each call is
counted (`anaf_calls_total`), timed and logged without tokens or secrets. Each URL is built from the base of its
host family (`AnafConfig`: OAuth, API, public, SPV mailbox), never from another family's.

Transient faults (5xx, timeouts, connection errors, WAF pages, ANAF's "eroare tehnica", HTTP 429) are retried
here, with jittered exponential backoff, for every call that is safe to repeat. Never retried: a limit (ANAF's
daily caps, our budget), and a call that changes something at ANAF once the request may have left (an upload
files a document; a code exchange or refresh spends its grant) - those only when the connection was never made.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import structlog
from opentelemetry.trace import SpanKind
from pydantic import SecretStr

from spvhub_common.clock import Clock, SystemClock, local_date, next_local_midnight
from spvhub_common.ids import InvalidTaxId, mask_cnp, normalize_cif, parse_tax_id
from spvhub_common.pii import PersonIds
from spvhub_common.telemetry import tracer

from .budget import DEFAULT_DAILY, AnafBudget, BudgetKind, Priority
from .config import AnafConfig
from .errors import (
    AccessDenied,
    AnafError,
    AnafUnavailable,
    AuthorizeError,
    DailyLimitReached,
    InvalidDocument,
    LimitReached,
    MessageExpired,
    NoMessages,
    NoRights,
    NotFound,
    OAuthError,
    RateLimited,
    Unauthorized,
    UnexpectedResponse,
    ValidationError,
    WafRejected,
    classify_text,
    is_waf_page,
    oauth_error,
    waf_error,
)
from .metrics import ANAF_CALLS_OF, ANAF_LATENCY_OF
from .models import (
    AuthorizeCallback,
    EfacturaRegisterEntry,
    EfacturaRegisterResult,
    MessageList,
    MessagePage,
    MessageState,
    RegistryCompany,
    RegistryResult,
    TokenSet,
    TransportInfo,
    TransportList,
    TransportListItem,
    UploadAnswer,
    ValidationResult,
    as_str,
)
from .transport import HttpPool

log = structlog.get_logger("spvhub_common.anaf")


def _cif_to_send(raw: str | int, endpoint: str, *, cnp_ok: bool = False) -> str:
    """A CIF the client sends to ANAF, checked as the platform checks every CIF (`spvhub_common.ids`): digits only,
    without `RO` (ANAF refuses `RO123`). A CIF that is not one never leaves: `ValidationError`, like ANAF's own
    refusal of a bad CIF, with the normaliser's `InvalidTaxId` (its stable code) as the cause.
    `cnp_ok` (e-Factura's upload and lists): a natural person's CNP (13 digits, valid control digit) is sent as it
    is, ANAF's `cif=` takes it since June 2026. A 13-digit value is never echoed in the error (it may be a CNP)."""
    try:
        return parse_tax_id(raw).value if cnp_ok else normalize_cif(raw)
    except InvalidTaxId as exc:
        text = "".join(str(raw).split())
        shown = mask_cnp(text) if len(text) == 13 else repr(raw)
        raise ValidationError(f"CIF invalid: {shown} ({exc.code})", endpoint=endpoint) from exc


_THIRTEEN_DIGITS = re.compile(r"(?<!\d)\d{13}(?!\d)")

T = TypeVar("T")
TokenSource = str | SecretStr | Callable[[], Awaitable[str]]

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_VALIDATE_BYTES = 5 * 1024 * 1024
MAX_REGISTRY_BATCH = 100
_UPLOAD_STANDARDS = ("UBL", "CN", "CII", "RASP")
_VALIDATE_STANDARDS = {"FACT1": "FACT1", "FCN": "FCN", "UBL": "FACT1", "CN": "FCN"}
_FILTERS = ("E", "T", "P", "R")

_OUTCOMES: list[tuple[type[Exception], str]] = [
    (NoMessages, "no_messages"),
    (NoRights, "no_rights"),
    (LimitReached, "daily_limit"),
    (RateLimited, "rate_limited"),
    (Unauthorized, "unauthorized"),
    (WafRejected, "waf"),
    (MessageExpired, "expired"),
    (ValidationError, "invalid"),
    (NotFound, "not_found"),
    (AnafUnavailable, "unavailable"),
    (OAuthError, "oauth_error"),
    (UnexpectedResponse, "unexpected"),
]


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    for cls, name in _OUTCOMES:
        if isinstance(exc, cls):
            return name
    return "error"


@dataclass(frozen=True)
class _Call:
    endpoint: str
    kind: str
    key: str | None


@dataclass
class CallStats:
    """Attempts sent and transient failures met, shared by a client and its views (benchmarks read them)."""

    attempts: int = 0
    transient_failures: int = 0


_TRANSIENT: tuple[type[AnafError], ...] = (AnafUnavailable, RateLimited, WafRejected)


def _reject_doctype(body: bytes) -> None:
    if b"<!DOCTYPE" in body[:2048] or b"<!ENTITY" in body[:4096]:
        raise UnexpectedResponse("XML response with a DOCTYPE refused")


def _xml_header(body: bytes, endpoint: str) -> tuple[dict[str, str], list[str]]:
    """Attributes of ANAF's `<header>` root and the `errorMessage`s of its `Errors` children."""
    _reject_doctype(body)
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise UnexpectedResponse(f"unparseable XML from ANAF: {exc}", endpoint=endpoint) from None
    errors = [
        el.attrib.get("errorMessage", "")
        for el in root.iter()
        if el.tag.rsplit("}", 1)[-1] in ("Errors", "Error") and "errorMessage" in el.attrib
    ]
    return dict(root.attrib), errors


class AnafClient:
    """Async client for every ANAF interface spvhub uses.

    Bearer calls take the access token from `token=` on the call, else from the client's bound token
    (a string, SecretStr, or an async callable, e.g. one asking the auth service). Build one client per
    process in the composition root and `with_token()` per connection; all share one connection pool.
    `priority` is what every call of this client spends from the shared budget: `Priority.BULK` (default,
    syncs and jobs) or `Priority.INTERACTIVE` (a person waits; may use the budget's interactive reserve);
    `with_priority()` gives a view with another priority.
    """

    def __init__(
        self,
        config: AnafConfig,
        budget: AnafBudget,
        *,
        token: TokenSource | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        http: httpx.AsyncClient | None = None,
        priority: Priority = Priority.BULK,
        _direct: HttpPool | None = None,
        _stats: CallStats | None = None,
    ) -> None:
        self.config = config
        self.budget = budget
        self.priority = Priority(priority)
        self.clock: Clock = clock or SystemClock()
        self._token_source = token
        self.stats = _stats or CallStats()
        self._owns_http = http is None
        timeout = httpx.Timeout(
            connect=config.connect_timeout,
            read=config.read_timeout,
            write=config.write_timeout,
            pool=config.pool_timeout,
        )
        headers = {"User-Agent": config.user_agent}
        # The default wire is one pyreqwest pool (spvhub_common.httpclient): plain GETs (list, download, state) go to
        # it directly, the rest through httpx over the same pool. A transport or client given by the caller (tests,
        # the in-process emulator) is used for every call.
        self._direct = _direct
        if http is None and transport is None:
            self._direct = HttpPool(timeout=timeout, headers=headers)
            transport = self._direct.transport()
        self._http = http or httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
            headers=headers,
        )

    def __repr__(self) -> str:
        return f"AnafClient(api_base={self.config.api_base!r}, env={self.config.env!r})"

    def with_token(self, token: TokenSource, *, priority: Priority | None = None) -> AnafClient:
        """A view of this client bound to `token`, sharing its connection pool, budget and clock (and its
        priority unless `priority` is given)."""
        return AnafClient(self.config, self.budget, token=token, clock=self.clock, http=self._http,
                          priority=self.priority if priority is None else priority, _direct=self._direct,
                          _stats=self.stats)

    def with_priority(self, priority: Priority) -> AnafClient:
        """A view of this client (same token, pool, budget and clock) whose calls spend the budget at `priority`."""
        return AnafClient(self.config, self.budget, token=self._token_source, clock=self.clock, http=self._http,
                          priority=priority, _direct=self._direct, _stats=self.stats)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()
            if self._direct is not None:
                await self._direct.aclose()

    async def __aenter__(self) -> AnafClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- plumbing -------------------------------------------------------------------------------

    def url(self, family: str, path: str) -> str:
        """`path` on the base of host `family` (oauth, api, public, spv)."""
        return f"{self.config.base(family)}/{path.lstrip('/')}"

    def _budget_key(self, sent: str) -> str:
        """What a call for `sent` (the `cif=` sent) is counted under in the shared budget: a natural person's CNP as
        its person key (or masked when no PII secret is configured), so the budget's tables never hold a CNP."""
        if len(sent) == 13 and sent.isdigit():
            secret = self.config.pii_secret.get_secret_value()
            return PersonIds(secret).key_of(sent) if secret else mask_cnp(sent)
        return sent

    def _api(self, service: str, name: str, *, env: str | None = None) -> str:
        """An authenticated e-Factura / e-Transport path on api.anaf.ro: /{prod|test}/{service}/{name}."""
        return self.url("api", f"{env or self.config.env}/{service}/{name.lstrip('/')}")

    def _public(self, path: str) -> str:
        return self.url("public", path)

    def _oauth(self, name: str) -> str:
        return self.url("oauth", f"anaf-oauth2/v1/{name}")

    async def _bearer(self, token: TokenSource | None) -> str:
        source = token if token is not None else self._token_source
        if source is None:
            raise Unauthorized("no access token configured for this ANAF call")
        if isinstance(source, SecretStr):
            return source.get_secret_value()
        if isinstance(source, str):
            return source
        return await source()

    def _resets_at(self) -> datetime:
        return next_local_midnight(self.clock.now())

    async def _call(self, call: _Call, method: str, url: str, parse: Callable[[httpx.Response], T], *,
                    repeatable: bool = True, **kw: Any) -> T:
        """One ANAF call with the transient-retry policy (module docstring): attempts up to `config.retries`;
        `repeatable=False` for a call that changes something at ANAF, repeated only when never sent."""
        cfg = self.config
        attempts = max(1, cfg.retries)
        for attempt in range(attempts):
            self.stats.attempts += 1
            try:
                if cfg.attempt_deadline is None:
                    return await self._attempt(call, method, url, parse, **kw)
                # a deadline as well: an in-process transport (tests) does not enforce httpx timeouts
                async with asyncio.timeout(cfg.attempt_deadline):
                    return await self._attempt(call, method, url, parse, **kw)
            except TimeoutError:
                err: AnafError = AnafUnavailable("timeout (attempt deadline)", endpoint=call.endpoint)
            except _TRANSIENT as exc:
                err = exc
            self.stats.transient_failures += 1
            unsent = isinstance(err, AnafUnavailable) and not err.sent
            if attempt + 1 >= attempts or not (repeatable or unsent):
                raise err
            log.info("anaf.retry", endpoint=call.endpoint, attempt=attempt + 1, error=type(err).__name__)
            await asyncio.sleep(cfg.backoff * (2 ** attempt) * random.uniform(0.7, 1.3))
        raise AssertionError("unreachable")

    async def _attempt(self, call: _Call, method: str, url: str, parse: Callable[[httpx.Response], T],
                       **kw: Any) -> T:
        """One ANAF request as one CLIENT span (the trace of an invoice starts at the ANAF call)."""
        with tracer("spvhub.anaf").start_as_current_span(
                f"anaf {call.endpoint}", kind=SpanKind.CLIENT,
                attributes={"anaf.endpoint": call.endpoint, "http.request.method": method}) as span:
            try:
                return await self._call_observed(call, method, url, parse, **kw)
            except AnafError as exc:
                span.set_attribute("anaf.outcome", _outcome(exc))
                if exc.status is not None:
                    span.set_attribute("http.response.status_code", exc.status)
                raise

    async def _call_observed(
        self,
        call: _Call,
        method: str,
        url: str,
        parse: Callable[[httpx.Response], T],
        *,
        token: TokenSource | None = None,
        bearer: bool = True,
        params: Mapping[str, str | int] | None = None,
        content: bytes | None = None,
        data: Mapping[str, str] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        ok_statuses: Iterable[int] = (),
    ) -> T:
        """Spend the budget, send, apply the generic checks, parse; observe the call whatever happens."""
        if self.priority == Priority.BULK:
            await self.budget.acquire(call.kind, call.key)  # the default: also fits budgets without priorities
        else:
            await self.budget.acquire(call.kind, call.key, priority=self.priority)
        hdrs = dict(headers or {})
        if bearer:
            hdrs["Authorization"] = f"Bearer {await self._bearer(token)}"
        started = time.perf_counter()
        status: int | None = None
        error: BaseException | None = None
        try:
            try:
                if self._direct is not None and method == "GET" and content is None and data is None \
                        and json_body is None and auth is None:
                    resp = await self._direct.get(url, params, hdrs)
                else:
                    resp = await self._http.request(
                        method,
                        url,
                        params=params,
                        content=content,
                        data=data,
                        json=json_body,
                        headers=hdrs,
                        auth=auth,
                    )
            except httpx.TimeoutException as exc:
                unavailable = AnafUnavailable(f"timeout: {type(exc).__name__}", endpoint=call.endpoint)
                unavailable.sent = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
                raise unavailable from None
            except httpx.TransportError as exc:
                unavailable = AnafUnavailable(f"connection error: {type(exc).__name__}", endpoint=call.endpoint)
                unavailable.sent = not isinstance(exc, httpx.ConnectError)
                raise unavailable from None
            status = resp.status_code
            self._check_generic(resp, call, set(ok_statuses))
            return parse(resp)
        except BaseException as exc:
            error = exc
            if isinstance(exc, AnafError):
                exc.endpoint = exc.endpoint or call.endpoint
                exc.status = exc.status if exc.status is not None else status
            await self._record_limit(call, exc)
            raise
        finally:
            elapsed = time.perf_counter() - started
            outcome = _outcome(error)
            ANAF_CALLS_OF(call.endpoint, outcome).inc()
            ANAF_LATENCY_OF(call.endpoint).observe(elapsed)
            fields: dict[str, Any] = {
                "endpoint": call.endpoint,
                "status": status,
                "duration_ms": round(elapsed * 1000, 1),
                "outcome": outcome,
            }
            if isinstance(error, AnafError):
                # ANAF's wording may quote the `cif=` it was given, a natural person's CNP: logged masked
                fields["anaf_text"] = _THIRTEEN_DIGITS.sub(lambda m: mask_cnp(m.group()), error.text[:300])
            if error is None or outcome in ("no_messages",):
                log.info("anaf.call", **fields)
            else:
                log.warning("anaf.call", **fields)

    async def _record_limit(self, call: _Call, exc: BaseException) -> None:
        """ANAF said stop: tell the shared budget so every replica stops for that key too."""
        try:
            if isinstance(exc, RateLimited):
                wait = exc.retry_after if exc.retry_after is not None else 60.0
                window = BudgetKind.PUBLIC if call.kind == BudgetKind.PUBLIC else BudgetKind.API
                await self.budget.mark_exhausted(window, None, self.clock.now() + timedelta(seconds=wait))
            elif isinstance(exc, DailyLimitReached) and call.kind in DEFAULT_DAILY:
                await self.budget.mark_exhausted(call.kind, call.key, exc.resets_at)
        except Exception:  # the original ANAF error matters more than bookkeeping
            log.warning("anaf.budget_mark_failed", endpoint=call.endpoint, exc_info=True)

    def _check_generic(self, resp: httpx.Response, call: _Call, ok_statuses: set[int]) -> None:
        status = resp.status_code
        if status in ok_statuses:
            return
        if status == 429:
            retry_after: float | None = None
            raw = resp.headers.get("Retry-After")
            if raw:
                try:
                    retry_after = float(raw)
                except ValueError:
                    retry_after = None
            raise RateLimited(resp.text[:500] or "Too Many Requests", retry_after=retry_after, endpoint=call.endpoint)
        if status in (401, 403):
            raise Unauthorized(_error_text(resp) or f"HTTP {status}", endpoint=call.endpoint, status=status)
        if 300 <= status < 400:
            location = resp.headers.get("Location", "")
            if "my.policy" in location:
                raise Unauthorized("F5 login wall (redirect to /my.policy)", endpoint=call.endpoint, status=status)
            raise UnexpectedResponse(f"unexpected redirect HTTP {status}", endpoint=call.endpoint, status=status)
        if status >= 500:
            raise AnafUnavailable(_error_text(resp) or f"HTTP {status}", endpoint=call.endpoint, status=status)
        if _looks_html(resp) and is_waf_page(resp.text):
            raise waf_error(resp.text, endpoint=call.endpoint, status=status)
        if status in (400, 404, 405, 413, 415):
            text = _error_text(resp) or f"HTTP {status}"
            err = classify_text(text, endpoint=call.endpoint, status=status)
            if isinstance(err, UnexpectedResponse):
                err = ValidationError(text, endpoint=call.endpoint, status=status)
            raise err
        if status >= 400:
            raise UnexpectedResponse(_error_text(resp) or f"HTTP {status}", endpoint=call.endpoint, status=status)

    def _classify(self, text: str, call: _Call, cif: str | None = None) -> AnafError:
        return classify_text(
            text,
            endpoint=call.endpoint,
            cif=cif,
            limit_scope=f"{call.kind}:{call.key}" if call.key else call.kind,
            resets_at=self._resets_at(),
        )

    # --- OAuth ----------------------------------------------------------------------------------

    def authorize_url(self, state: str | None = None) -> str:
        """The URL a person opens to pick their certificate at ANAF (Authorization Code grant)."""
        query = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": self.config.redirect_uri,
            "token_content_type": "jwt",
        }
        if state is not None:
            query["state"] = state
        return f"{self._oauth('authorize')}?{urlencode(query)}"

    @staticmethod
    def parse_authorize_callback(callback: str | Mapping[str, str]) -> AuthorizeCallback:
        """Read ANAF's redirect (a full URL, a query string, or the query params).

        Raises `AccessDenied` for `error=access_denied`, `AuthorizeError` for other errors or no code.
        """
        if isinstance(callback, str):
            query = urlsplit(callback).query if "?" in callback or "://" in callback else callback
            params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        else:
            params = dict(callback)
        state = params.get("state") or None
        error = params.get("error")
        if error:
            description = params.get("error_description", "")
            if error == "access_denied":
                raise AccessDenied(error, description, state)
            raise AuthorizeError(error, description, state)
        code = params.get("code")
        if not code:
            raise AuthorizeError("invalid_request", "no code in the authorize callback", state)
        return AuthorizeCallback(code=code, state=state)

    async def exchange_code(self, code: str) -> TokenSet:
        """Trade an authorize code (valid ≤ 60 s, single use) for tokens."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.config.redirect_uri,
            "token_content_type": "jwt",
        }
        return await self._token(form, "oauth.exchange_code", previous_refresh=None)

    async def refresh(self, refresh_token: str | SecretStr) -> TokenSet:
        """Refresh; ANAF rotates both tokens: persist the returned pair (old refresh may stop working)."""
        rt = refresh_token.get_secret_value() if isinstance(refresh_token, SecretStr) else refresh_token
        form = {"grant_type": "refresh_token", "refresh_token": rt, "token_content_type": "jwt"}
        return await self._token(form, "oauth.refresh", previous_refresh=rt)

    async def _token(self, form: dict[str, str], endpoint: str, previous_refresh: str | None) -> TokenSet:
        secret = self.config.client_secret.get_secret_value()
        auth: tuple[str, str] | None = None
        if self.config.client_auth == "basic":
            auth = (self.config.client_id, secret)
        else:
            form = {**form, "client_id": self.config.client_id, "client_secret": secret}

        def parse(resp: httpx.Response) -> TokenSet:
            body = _json_or_none(resp)
            if resp.status_code == 200 and isinstance(body, dict) and body.get("access_token"):
                return TokenSet.from_response(body, previous_refresh)
            raise UnexpectedResponse(f"token endpoint answered HTTP {resp.status_code} without tokens")

        def oauth_body(resp: httpx.Response) -> None:
            body = _json_or_none(resp)
            if isinstance(body, dict) and body.get("error"):
                raise oauth_error(str(body["error"]), str(body.get("error_description") or ""), status=resp.status_code)

        def parse_all(resp: httpx.Response) -> TokenSet:
            if resp.status_code in (400, 401):
                oauth_body(resp)
                if resp.status_code == 401:
                    raise oauth_error("invalid_client", "HTTP 401 from the token endpoint", status=401)
                raise oauth_error("invalid_request", f"HTTP {resp.status_code}", status=resp.status_code)
            return parse(resp)

        return await self._call(
            _Call(endpoint, BudgetKind.OAUTH, None),
            "POST",
            self._oauth("token"),
            parse_all,
            repeatable=False,  # a code is single use, a refresh rotates the pair: never sent twice
            bearer=False,
            data=form,
            auth=auth,
            headers={"Accept": "application/json"},
            ok_statuses=(400, 401),
        )

    # --- e-Factura ------------------------------------------------------------------------------

    def _list_body(self, resp: httpx.Response, call: _Call, cif: str) -> dict[str, Any] | None:
        """The JSON of a list response, or None for ANAF's benign "Nu exista mesaje ..."."""
        body = _json_object(resp, call.endpoint)
        if body.get("eroare"):
            err = self._classify(str(body["eroare"]), call, cif)
            if isinstance(err, NoMessages):
                return None
            raise err
        return body

    async def list_messages_paginated(
        self,
        cif: str | int,
        start_ms: int,
        end_ms: int,
        page: int = 1,
        filter: str | None = None,  # noqa: A002 - ANAF's own parameter name (filtru)
        *,
        token: TokenSource | None = None,
    ) -> MessagePage:
        """listaMesajePaginatieFactura: one page (1-based, 500 per page) of [start_ms, end_ms] (UTC epoch ms).

        An empty window ("Nu exista mesaje in intervalul selectat") returns an empty page.
        """
        cif = _cif_to_send(cif, "efactura.listaMesajePaginatieFactura", cnp_ok=True)
        _check_filter(filter)
        call = _Call("efactura.listaMesajePaginatieFactura", BudgetKind.EF_LIST_PAGED, self._budget_key(cif))
        params: dict[str, str | int] = {"startTime": start_ms, "endTime": end_ms, "cif": cif, "pagina": page}
        if filter:
            params["filtru"] = filter

        def parse(resp: httpx.Response) -> MessagePage:
            body = self._list_body(resp, call, cif)
            return MessagePage.empty(page) if body is None else MessagePage.parse(body)

        return await self._call(
            call, "GET", self._api("FCTEL/rest", "listaMesajePaginatieFactura"), parse, token=token, params=params
        )

    async def iter_message_pages(
        self,
        cif: str | int,
        start_ms: int,
        end_ms: int,
        filter: str | None = None,  # noqa: A002
        *,
        token: TokenSource | None = None,
    ) -> AsyncIterator[MessagePage]:
        """Walk every page of a window until `numar_total_pagini`."""
        page = 1
        while True:
            result = await self.list_messages_paginated(cif, start_ms, end_ms, page, filter, token=token)
            yield result
            if not result.has_next:
                return
            page += 1

    async def list_messages(
        self,
        cif: str | int,
        days: int,
        filter: str | None = None,  # noqa: A002
        *,
        token: TokenSource | None = None,
    ) -> MessageList:
        """listaMesajeFactura over the last `days` (1..60); max 500 results (else `TooManyMessages`).

        "Nu exista mesaje ..." returns an empty list; the `cui` field (rights inventory) is kept when sent.
        """
        cif = _cif_to_send(cif, "efactura.listaMesajeFactura", cnp_ok=True)
        _check_filter(filter)
        call = _Call("efactura.listaMesajeFactura", BudgetKind.EF_LIST, self._budget_key(cif))
        params: dict[str, str | int] = {"zile": days, "cif": cif}
        if filter:
            params["filtru"] = filter

        def parse(resp: httpx.Response) -> MessageList:
            body = self._list_body(resp, call, cif)
            if body is None:
                return MessageList(messages=[], serial=None, cui=None, titlu=None)
            return MessageList.parse(body)

        return await self._call(
            call, "GET", self._api("FCTEL/rest", "listaMesajeFactura"), parse, token=token, params=params
        )

    async def download(self, message_id: str | int, *, token: TokenSource | None = None) -> bytes:
        """descarcare: the signed ZIP of a message (10 per message per day; `MessageExpired` after 60 days)."""
        mid = str(message_id).strip()
        call = _Call("efactura.descarcare", BudgetKind.EF_DOWNLOAD, mid)

        def parse(resp: httpx.Response) -> bytes:
            if resp.content[:2] == b"PK":
                return resp.content
            body = _json_object(resp, call.endpoint)
            if body.get("eroare"):
                raise self._classify(str(body["eroare"]), call)
            raise UnexpectedResponse("descarcare answered neither a ZIP nor an eroare", endpoint=call.endpoint)

        return await self._call(
            call, "GET", self._api("FCTEL/rest", "descarcare"), parse, token=token, params={"id": mid}
        )

    async def upload(
        self,
        xml: bytes | str,
        cif: str | int,
        standard: str = "UBL",
        extern: bool = False,
        autofactura: bool = False,
        executare: bool = False,
        b2c: bool = False,
        *,
        token: TokenSource | None = None,
        budget_key: str | None = None,
    ) -> UploadAnswer:
        """upload / uploadb2c: ANAF's whole answer (`index` to follow with `message_state`, `raw` as received).

        Rejections raise `InvalidDocument` (XSD/SAX), `ValidationError`, `NoRights`, `DailyLimitReached` (RASP),
        with ANAF's answer as `.response`. Never repeated once the request may have left: after a timeout, a 5xx
        or ANAF's "A aparut o eroare tehnica" (`AnafUnavailable`) the document may or may not be filed, and only a
        look at ANAF's lists can tell (anaf-api.md §11.17).

        `budget_key`: what the RASP daily cap is counted under instead of `cif` (a natural person's platform key,
        so the budget's tables never hold the CNP sent as `cif=`).
        """
        body = xml.encode("utf-8") if isinstance(xml, str) else xml
        cif = _cif_to_send(cif, "efactura.upload", cnp_ok=True)
        if standard not in _UPLOAD_STANDARDS:
            raise ValidationError(
                "Valorile acceptate pentru parametrul standard sunt UBL, CN, CII sau RASP", endpoint="efactura.upload"
            )
        if len(body) > MAX_UPLOAD_BYTES:
            raise ValidationError("Marime fisier transmis mai mare de 10 MB.", endpoint="efactura.upload")
        name = "uploadb2c" if b2c else "upload"
        kind = BudgetKind.EF_UPLOAD_RASP if standard == "RASP" else BudgetKind.EF_UPLOAD
        call = _Call(f"efactura.{name}", kind, (budget_key or self._budget_key(cif)) if standard == "RASP" else None)
        params: dict[str, str | int] = {"standard": standard, "cif": cif}
        if extern:
            params["extern"] = "DA"
        if autofactura:
            params["autofactura"] = "DA"
        if executare:
            params["executare"] = "DA"

        def parse(resp: httpx.Response) -> UploadAnswer:
            attrs, errors = _xml_header(resp.content, call.endpoint)
            index = attrs.get("index_incarcare")
            if attrs.get("ExecutionStatus") == "0" and index:
                return UploadAnswer(index=index, date_response=attrs.get("dateResponse"),
                                    execution_status=attrs.get("ExecutionStatus"), attributes=attrs,
                                    raw=resp.content)
            err: AnafError = self._classify(errors[0], call, cif) if errors else UnexpectedResponse(
                "upload answered without index_incarcare or Errors", endpoint=call.endpoint)
            err.response = resp.content
            raise err

        return await self._call(
            call,
            "POST",
            self._api("FCTEL/rest", name),
            parse,
            repeatable=False,
            token=token,
            params=params,
            content=body,
            headers={"Content-Type": "text/plain"},
        )

    async def message_state(self, index: str | int, *, token: TokenSource | None = None) -> MessageState:
        """stareMesaj for an upload index (100 queries per index per day)."""
        idx = str(index).strip()
        call = _Call("efactura.stareMesaj", BudgetKind.EF_STATE, idx)

        def parse(resp: httpx.Response) -> MessageState:
            attrs, errors = _xml_header(resp.content, call.endpoint)
            if "stare" in attrs:
                return MessageState(stare=attrs["stare"], id_descarcare=attrs.get("id_descarcare") or None)
            if errors:
                raise self._classify(errors[0], call)
            raise UnexpectedResponse("stareMesaj answered without stare or Errors", endpoint=call.endpoint)

        return await self._call(
            call, "GET", self._api("FCTEL/rest", "stareMesaj"), parse, token=token, params={"id_incarcare": idx}
        )

    def _validation_target(self, path: str, token: TokenSource | None) -> tuple[str, str, bool]:
        """validare/transformare exist only under /prod/: Bearer on api.anaf.ro, else the public host."""
        if token is not None or self._token_source is not None:
            return self._api("FCTEL/rest", path, env="prod"), BudgetKind.EF_VALIDATE, True
        return self._public(f"prod/FCTEL/rest/{path}"), BudgetKind.PUBLIC, False

    async def validate(
        self, xml: bytes | str, standard: str = "FACT1", *, token: TokenSource | None = None
    ) -> ValidationResult:
        """validare/{FACT1|FCN} (UBL/CN accepted as aliases): `ok` or `nok` with ANAF's messages."""
        body = xml.encode("utf-8") if isinstance(xml, str) else xml
        std = _validate_standard(standard)
        if len(body) > MAX_VALIDATE_BYTES:
            raise ValidationError("Marime fisier transmis mai mare de 5 MB.", endpoint="efactura.validare")
        url, kind, bearer = self._validation_target(f"validare/{std}", token)
        call = _Call("efactura.validare", kind, None)

        def parse(resp: httpx.Response) -> ValidationResult:
            data = _json_object(resp, call.endpoint)
            messages = _messages(data)
            stare = str(data.get("stare") or "")
            if stare not in ("ok", "nok"):
                raise UnexpectedResponse("validare answered without stare", endpoint=call.endpoint)
            return ValidationResult(ok=stare == "ok", messages=messages, trace_id=as_str(data.get("trace_id")))

        return await self._call(
            call, "POST", url, parse, token=token, bearer=bearer, content=body, headers={"Content-Type": "text/plain"}
        )

    async def xml_to_pdf(
        self, xml: bytes | str, standard: str = "FACT1", validate: bool = True, *, token: TokenSource | None = None
    ) -> bytes:
        """transformare/{FACT1|FCN}[/DA]: ANAF's PDF; `InvalidDocument` when it refuses, `WafRejected` on WAF."""
        body = xml.encode("utf-8") if isinstance(xml, str) else xml
        std = _validate_standard(standard)
        if len(body) > MAX_VALIDATE_BYTES:
            raise ValidationError("Marime fisier transmis mai mare de 5 MB.", endpoint="efactura.transformare")
        url, kind, bearer = self._validation_target(f"transformare/{std}" + ("" if validate else "/DA"), token)
        call = _Call("efactura.transformare", kind, None)

        def parse(resp: httpx.Response) -> bytes:
            if resp.content[:4] == b"%PDF":
                return resp.content
            data = _json_object(resp, call.endpoint)
            messages = _messages(data)
            raise InvalidDocument(
                "; ".join(messages) or "transformare refused the document", messages=messages, endpoint=call.endpoint
            )

        return await self._call(
            call, "POST", url, parse, token=token, bearer=bearer, content=body, headers={"Content-Type": "text/plain"}
        )

    # --- e-Transport ----------------------------------------------------------------------------

    def _et_errors(self, body: dict[str, Any], call: _Call, cif: str | None) -> AnafError | None:
        errors = body.get("Errors")
        if isinstance(errors, list) and errors:
            first = errors[0]
            text = str(first.get("errorMessage") if isinstance(first, dict) else first)
            return self._classify(text, call, cif)
        if body.get("error") and isinstance(body["error"], str):
            return self._classify(body["error"], call, cif)
        return None

    async def transport_info(
        self,
        cui_op: str | int,
        cui_decl: str | int | None = None,
        uit: str | None = None,
        ref_decl: str | None = None,
        *,
        token: TokenSource | None = None,
    ) -> list[TransportInfo]:
        """info?cui_op=: the ACTIVE notifications where `cui_op` is the carrier ([] when none)."""
        cui = _cif_to_send(cui_op, "etransport.info")
        call = _Call("etransport.info", BudgetKind.ET_INFO, cui)
        params: dict[str, str | int] = {"cui_op": cui}
        if cui_decl is not None:
            params["cui_decl"] = _cif_to_send(cui_decl, "etransport.info")
        if uit:
            params["uit"] = uit
        if ref_decl:
            params["ref_decl"] = ref_decl

        def parse(resp: httpx.Response) -> list[TransportInfo]:
            data = _json_any(resp, call.endpoint)
            if isinstance(data, list):
                return [TransportInfo.parse(x) for x in data if isinstance(x, dict)]
            if isinstance(data, dict):
                err = self._et_errors(data, call, cui)
                if isinstance(err, NoMessages):
                    return []
                if err is not None:
                    raise err
            raise UnexpectedResponse("info answered neither a list nor an error", endpoint=call.endpoint)

        return await self._call(call, "GET", self._api("ETRANSPORT/ws/v1", "info"), parse, token=token, params=params)

    async def transport_list(self, days: int, cif: str | int, *, token: TokenSource | None = None) -> TransportList:
        """lista/{zile}/{cif}: the declarant's notifications of the last `days` (1..60), unsorted."""
        cif = _cif_to_send(cif, "etransport.lista")
        call = _Call("etransport.lista", BudgetKind.ET_LIST, cif)

        def parse(resp: httpx.Response) -> TransportList:
            body = _json_object(resp, call.endpoint)
            err = self._et_errors(body, call, cif)
            if isinstance(err, NoMessages):
                return TransportList(items=[], serial=None, cui=None, titlu=as_str(body.get("titlu")))
            if err is not None:
                raise err
            items = [TransportListItem.parse(x) for x in body.get("mesaje") or [] if isinstance(x, dict)]
            cui = body.get("cui")
            return TransportList(
                items=items,
                serial=as_str(body.get("serial")),
                cui=frozenset(p.strip() for p in str(cui).split(",") if p.strip()) if cui else None,
                titlu=as_str(body.get("titlu")),
            )

        return await self._call(
            call, "GET", self._api("ETRANSPORT/ws/v1", f"lista/{int(days)}/{cif}"), parse, token=token
        )

    async def transport_state(self, index: str | int, *, token: TokenSource | None = None) -> MessageState:
        """e-Transport stareMesaj/{id_incarcare} (100 per index per day); `nok` details raise nothing."""
        idx = str(index).strip()
        call = _Call("etransport.stareMesaj", BudgetKind.ET_STATE, idx)

        def parse(resp: httpx.Response) -> MessageState:
            body = _json_object(resp, call.endpoint)
            if body.get("stare"):
                return MessageState(stare=str(body["stare"]), id_descarcare=None)
            err = self._et_errors(body, call, None)
            raise err or UnexpectedResponse("stareMesaj answered without stare", endpoint=call.endpoint)

        return await self._call(call, "GET", self._api("ETRANSPORT/ws/v1", f"stareMesaj/{idx}"), parse, token=token)

    # --- public registries (no auth, 1 request/second) ------------------------------------------

    def _registry_payload(self, cuis: Iterable[str | int], on: date | None) -> list[list[dict[str, Any]]]:
        day = (on or local_date(self.clock.now())).isoformat()
        items: list[dict[str, Any]] = []
        seen: set[int] = set()
        for raw in cuis:
            digits = _cif_to_send(raw, "public.registry")
            n = int(digits)
            if n not in seen:
                seen.add(n)
                items.append({"cui": n, "data": day})
        return [items[i : i + MAX_REGISTRY_BATCH] for i in range(0, len(items), MAX_REGISTRY_BATCH)]

    async def registry_lookup(self, cuis: Iterable[str | int], on: date | None = None) -> RegistryResult:
        """PlatitorTvaRest v9 `tva` as of `on` (default today in Romania); batches of ≤ 100 CUIs."""
        found: list[RegistryCompany] = []
        not_found: list[str] = []
        for batch in self._registry_payload(cuis, on):
            call = _Call("public.PlatitorTvaRest.v9.tva", BudgetKind.PUBLIC, None)

            def parse(resp: httpx.Response, call: _Call = call) -> RegistryResult:
                body = _json_object(resp, call.endpoint)
                cod = body.get("cod")
                if cod is not None and as_str(cod) != "200":
                    raise self._classify(str(body.get("message") or f"cod {cod}"), call)
                return RegistryResult(
                    found=[RegistryCompany.parse(x) for x in body.get("found") or [] if isinstance(x, dict)],
                    not_found=[as_str(x) or "" for x in body.get("notFound") or []],
                )

            part = await self._call(
                call, "POST", self._public("api/PlatitorTvaRest/v9/tva"), parse, bearer=False, json_body=batch
            )
            found.extend(part.found)
            not_found.extend(part.not_found)
        return RegistryResult(found=found, not_found=not_found)

    async def efactura_register_lookup(
        self, cuis: Iterable[str | int], on: date | None = None
    ) -> EfacturaRegisterResult:
        """RO e-Factura register (registruroefactura v1); "nothing found" (HTTP 404) is an empty result."""
        found: list[EfacturaRegisterEntry] = []
        not_found: list[str] = []
        for batch in self._registry_payload(cuis, on):
            call = _Call("public.registruroefactura.v1", BudgetKind.PUBLIC, None)

            def parse(resp: httpx.Response, call: _Call = call) -> EfacturaRegisterResult:
                body = _json_object(resp, call.endpoint)
                if resp.status_code == 404 and "found" not in body:
                    raise ValidationError(_error_text(resp) or "HTTP 404", endpoint=call.endpoint, status=404)
                return EfacturaRegisterResult(
                    found=[EfacturaRegisterEntry.parse(x) for x in body.get("found") or [] if isinstance(x, dict)],
                    not_found=[as_str(x) or "" for x in body.get("notFound") or []],
                )

            part = await self._call(
                call,
                "POST",
                self._public("api/registruroefactura/v1/interogare"),
                parse,
                bearer=False,
                json_body=batch,
                ok_statuses=(404,),
            )
            found.extend(part.found)
            not_found.extend(part.not_found)
        return EfacturaRegisterResult(found=found, not_found=not_found)


# --- helpers -------------------------------------------------------------------------------------


def _check_filter(value: str | None) -> None:
    if value is not None and value not in _FILTERS:
        raise ValidationError("Valorile acceptate pentru parametrul filtru sunt E, T, P sau R")


def _validate_standard(standard: str) -> str:
    std = _VALIDATE_STANDARDS.get(standard.upper())
    if std is None:
        raise ValidationError("Valorile acceptate pentru parametrul standard sunt FACT1 si FCN")
    return std


def _looks_html(resp: httpx.Response) -> bool:
    ctype = resp.headers.get("Content-Type", "")
    return "html" in ctype or resp.content.lstrip()[:1] == b"<" and b"<html" in resp.content[:2000].lower()


def _json_or_none(resp: httpx.Response) -> Any:
    try:
        return json.loads(resp.content)
    except ValueError:
        return None


def _json_any(resp: httpx.Response, endpoint: str) -> Any:
    """JSON body; ANAF sometimes labels it text/plain. A WAF page or garbage raises."""
    data = _json_or_none(resp)
    if data is None:
        if is_waf_page(resp.text):
            raise waf_error(resp.text, endpoint=endpoint, status=resp.status_code)
        raise UnexpectedResponse(f"not JSON: {resp.text[:200]}", endpoint=endpoint, status=resp.status_code)
    return data


def _json_object(resp: httpx.Response, endpoint: str) -> dict[str, Any]:
    data = _json_any(resp, endpoint)
    if not isinstance(data, dict):
        raise UnexpectedResponse("expected a JSON object", endpoint=endpoint, status=resp.status_code)
    return data


def _messages(data: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for m in data.get("Messages") or []:
        out.append(str(m.get("message") if isinstance(m, dict) else m))
    return out


def _error_text(resp: httpx.Response) -> str:
    """The human text of an error body: Spring's `message`, OAuth's `error_description`, or the raw text."""
    data = _json_or_none(resp)
    if isinstance(data, dict):
        for key in ("message", "eroare", "error_description", "error", "msg"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
    if _looks_html(resp):
        return ""
    return resp.text[:500]
