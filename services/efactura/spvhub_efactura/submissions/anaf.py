"""The e-Factura calls of outgoing submissions (upload / uploadb2c, stareMesaj, validare) behind a port, through
the shared `spvhub_common.anaf.AnafClient` (shared budget on every call, ANAF's wording classified, transient faults
of stareMesaj and validare retried there).

The client never repeats an upload once the request may have left: after a timeout, a 5xx or ANAF's "A aparut o
eroare tehnica" (e.g. "Cod: 1814") nobody knows whether ANAF filed the document, and a resend could file it twice
(see submissions.py for what happens instead: the submission becomes `unknown` and is reconciled first).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from spvhub_common.anaf.client import AnafClient
from spvhub_common.anaf.models import MessageState, ValidationResult


@dataclass(frozen=True)
class Uploaded:
    index: str
    response: bytes  # ANAF's upload answer as received (XML `header`)


class SubmissionAnaf(Protocol):
    """Port: what a submission needs from ANAF."""

    async def upload(self, token: str, xml: bytes, cif: str, standard: str, *, extern: bool, autofactura: bool,
                     b2c: bool, budget_key: str | None = None) -> Uploaded:
        """`cif`: what ANAF knows the company by (a CNP for a natural person); `budget_key`: the platform's id of
        the company, which the shared budget counts under (never a CNP)."""

    async def state(self, token: str, index: str) -> MessageState: ...

    async def validate(self, token: str, xml: bytes, standard: str) -> ValidationResult: ...


class CommonSubmissionAnaf:
    """Adapter over the shared AnafClient. A refusal raises the client's typed error with ANAF's answer as
    `.response`."""

    def __init__(self, client: AnafClient) -> None:
        self.client = client

    async def upload(self, token: str, xml: bytes, cif: str, standard: str, *, extern: bool, autofactura: bool,
                     b2c: bool, budget_key: str | None = None) -> Uploaded:
        answer = await self.client.upload(xml, cif, standard, extern=extern, autofactura=autofactura, b2c=b2c,
                                          token=token, budget_key=budget_key)
        return Uploaded(answer.index, answer.raw)

    async def state(self, token: str, index: str) -> MessageState:
        return await self.client.message_state(index, token=token)

    async def validate(self, token: str, xml: bytes, standard: str) -> ValidationResult:
        return await self.client.validate(xml, "FCN" if standard == "CN" else "FACT1", token=token)
