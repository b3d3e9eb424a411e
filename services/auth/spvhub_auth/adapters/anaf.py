"""The auth service's port to ANAF: the authorize URL, code exchange, refresh, and the one cheap rights check
after an authorization, implemented over the shared `spvhub_common.anaf.AnafClient` (which builds each URL from
its host family's base, spends the shared budget and raises the typed errors of spvhub_common.anaf.errors).

Its calls spend the budget at `Priority.INTERACTIVE`: a person waits on the OAuth callback (code exchange,
rights check), and a service waits on the internal token endpoints (refresh), so they may use the budget's
interactive reserve instead of waiting for the next minute behind a sync that filled its share.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from spvhub_common.anaf import AnafBudget, AnafClient
from spvhub_common.anaf import TokenSet as AnafTokenSet
from spvhub_common.anaf import errors as anaf_errors


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str
    expires_in: int | None

    def __repr__(self) -> str:  # never print a token
        return f"TokenSet(expires_in={self.expires_in})"


class AnafGateway(Protocol):
    def authorize_url(self, state: str) -> str: ...

    async def exchange_code(self, code: str) -> TokenSet: ...

    async def refresh(self, refresh_token: str) -> TokenSet: ...

    async def check_rights(self, access_token: str, cif: str) -> frozenset[str] | None:
        """Returns when the token's certificate has SPV rights on `cif` (a CIF, or a natural person's CNP), with
        ANAF's rights inventory when the answer carried one; raises anaf_errors.NoRights otherwise."""


class ClientAnafGateway:
    """`AnafGateway` over the shared client (built with `Priority.INTERACTIVE` by the composition root)."""

    def __init__(self, client: AnafClient) -> None:
        self.client = client

    @property
    def budget(self) -> AnafBudget:
        return self.client.budget

    @budget.setter
    def budget(self, budget: AnafBudget) -> None:
        self.client.budget = budget

    async def aclose(self) -> None:
        await self.client.aclose()

    def authorize_url(self, state: str) -> str:
        return self.client.authorize_url(state)

    async def exchange_code(self, code: str) -> TokenSet:
        return _tokens(await self.client.exchange_code(code))

    async def refresh(self, refresh_token: str) -> TokenSet:
        return _tokens(await self.client.refresh(refresh_token))

    async def check_rights(self, access_token: str, cif: str) -> frozenset[str] | None:
        # listaMesajeFactura?zile=1: "no messages" also proves the rights; NoRights propagates
        return (await self.client.list_messages(cif, 1, token=access_token)).cui


def _tokens(tokens: AnafTokenSet) -> TokenSet:
    access = tokens.access_token.get_secret_value()
    refresh = tokens.refresh_token.get_secret_value()
    if not access or not refresh:
        raise anaf_errors.UnexpectedResponse("token endpoint answered without both tokens", endpoint="oauth.token")
    return TokenSet(access, refresh, tokens.expires_in)


def token_error_is_refusal(exc: Exception) -> bool:
    """ANAF refuses the grant for good (a person must act) rather than failing transiently."""
    return isinstance(exc, anaf_errors.InvalidGrant)
