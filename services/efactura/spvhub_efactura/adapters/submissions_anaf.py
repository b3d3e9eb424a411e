"""The e-Factura calls of outgoing submissions (upload / uploadb2c, stareMesaj, validare) behind a port, through
the shared `spvhub_common.anaf.AnafClient` (shared budget on every call, ANAF's wording classified).

The upload is never retried here: after a timeout or a 5xx nobody knows whether ANAF filed the document, and a
retry could file it twice (see submissions.py for what happens instead). stareMesaj and validare are safe to
retry and get bounded, jittered retries.
"""
from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import httpx
from spvhub_common.anaf.budget import BudgetKind
from spvhub_common.anaf.client import AnafClient
from spvhub_common.anaf.errors import AnafError, AnafUnavailable, RateLimited, UnexpectedResponse, WafRejected
from spvhub_common.anaf.models import MessageState, ValidationResult, normalize_cif

T = TypeVar("T")


@dataclass(frozen=True)
class Uploaded:
    index: str
    response: bytes  # ANAF's upload answer as received (XML `header`)


class SubmissionAnaf(Protocol):
    """Port: what a submission needs from ANAF."""

    async def upload(self, token: str, xml: bytes, cif: str, standard: str, *, extern: bool, autofactura: bool,
                     b2c: bool) -> Uploaded: ...

    async def state(self, token: str, index: str) -> MessageState: ...

    async def validate(self, token: str, xml: bytes, standard: str) -> ValidationResult: ...


class CommonSubmissionAnaf:
    """Adapter over the shared AnafClient."""

    def __init__(self, client: AnafClient, *, timeout: float = 60.0, retries: int = 4, backoff: float = 0.3) -> None:
        self.client = client
        self.timeout = timeout
        self.retries = max(1, retries)
        self.backoff = backoff

    async def _retrying(self, fn: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(self.retries):
            try:
                return await asyncio.wait_for(fn(), self.timeout)
            except TimeoutError:
                err: AnafError = AnafUnavailable("timeout")
            except (AnafUnavailable, RateLimited, WafRejected) as e:
                err = e
            if attempt + 1 >= self.retries:
                raise err
            await asyncio.sleep(self.backoff * (2 ** attempt) * random.uniform(0.7, 1.3))
        raise AssertionError("unreachable")

    async def upload(self, token: str, xml: bytes, cif: str, standard: str, *, extern: bool, autofactura: bool,
                     b2c: bool) -> Uploaded:
        return await asyncio.wait_for(
            upload_with_response(self.client, xml, cif, standard, extern=extern, autofactura=autofactura, b2c=b2c,
                                 token=token), self.timeout)

    async def state(self, token: str, index: str) -> MessageState:
        return await self._retrying(lambda: self.client.message_state(index, token=token))

    async def validate(self, token: str, xml: bytes, standard: str) -> ValidationResult:
        std = "FCN" if standard == "CN" else "FACT1"
        return await self._retrying(lambda: self.client.validate(xml, std, token=token))


async def upload_with_response(client: AnafClient, xml: bytes, cif: str, standard: str, *, extern: bool,
                               autofactura: bool, b2c: bool, token: str) -> Uploaded:
    """`AnafClient.upload`, keeping ANAF's answer (the client returns only the index): same budget kind and key,
    same classification of refusals (the raw answer rides on the exception as `.response`)."""
    from spvhub_common.anaf import client as anaf_client  # the client's call plumbing (budget, span, metrics)

    cif = normalize_cif(cif)
    name = "uploadb2c" if b2c else "upload"
    kind = BudgetKind.EF_UPLOAD_RASP if standard == "RASP" else BudgetKind.EF_UPLOAD
    call = anaf_client._Call(f"efactura.{name}", kind, cif if standard == "RASP" else None)
    params: dict[str, str | int] = {"standard": standard, "cif": cif}
    if extern:
        params["extern"] = "DA"
    if autofactura:
        params["autofactura"] = "DA"

    def parse(resp: httpx.Response) -> Uploaded:
        attrs, errors = anaf_client._xml_header(resp.content, call.endpoint)
        index = attrs.get("index_incarcare")
        if attrs.get("ExecutionStatus") == "0" and index:
            return Uploaded(index, resp.content)
        err: AnafError = client._classify(errors[0], call, cif) if errors else UnexpectedResponse(
            "upload answered without index_incarcare or Errors", endpoint=call.endpoint)
        err.response = resp.content  # type: ignore[attr-defined]
        raise err

    return await client._call(call, "POST", client._api("FCTEL/rest", name), parse, token=token, params=params,
                              content=xml, headers={"Content-Type": "text/plain"})
