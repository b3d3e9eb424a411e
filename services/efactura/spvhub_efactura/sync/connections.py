"""Which connection acts for a company, and its ANAF token (refreshed once after a 401/403)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from spvhub_common.anaf.errors import Unauthorized
from spvhub_common.tokens import InternalToken, TokenSource, TokenUnavailable
from spvhub_common.uow import SqlUnitOfWork

from spvhub_efactura.adapters import ledger, queries

T = TypeVar("T")


class UowFactory(Protocol):
    def __call__(self) -> SqlUnitOfWork: ...


class SyncPaused(Exception):
    """No entitled connection active here for the CIF, or a person must authorize again. `code` is stable:
    no_entitled_connection | no_filing_connection | reauthorization_required | connection_revoked."""

    def __init__(self, message: str, code: str = "reauthorization_required") -> None:
        super().__init__(message)
        self.code = code


class AuthUnavailable(Exception):
    """auth could not be reached or failed (transient): the sync and the submissions retry later. Its text is what
    reaches a company's or a message's `last_error` ("AuthUnavailable: auth answered 503"): never a connection id."""


# The connection's `status_reason` when auth refuses it for good (the names efactura has always recorded).
PAUSE_REASONS = {"reauthorization_required": "auth: ReauthorizationRequired", "no_connection": "auth: NoConnection"}


def _auth_unavailable(e: TokenUnavailable) -> AuthUnavailable:
    if e.status_code is not None:
        return AuthUnavailable(f"auth answered {e.status_code}")
    # auth unreachable: the transport's own words; or an answer without a usable token
    return AuthUnavailable(str(e.__cause__) if e.__cause__ is not None else e.message)


class Connections:
    """The connection portfolio entitles for a company, and calls made with its token."""

    def __init__(self, uow: UowFactory, tokens: TokenSource) -> None:
        self.uow = uow
        self.tokens = tokens

    async def connection_for(self, cif: str, *, filing: bool = False) -> str:
        """The first connection portfolio entitles for `cif` on e-Factura (its rank order) that is active here;
        to file, the first that may also file. Never any other connection: a certificate's rights alone do not
        make a connection serve a company."""
        async with self.uow() as uow:
            rows = await queries.entitled_connections(uow.session, cif)
        usable = [r for r in rows if r.may_file] if filing else rows
        for r in usable:
            if r.status == "active":
                return r.connection_id
        if not rows:
            raise SyncPaused(f"no connection is entitled to act for CIF {cif} on e-Factura",
                             code="no_entitled_connection")
        if not usable:
            raise SyncPaused(f"no entitled connection may file for CIF {cif}", code="no_filing_connection")
        code = "connection_revoked" if usable[0].status == "revoked" else "reauthorization_required"
        raise SyncPaused(f"the connection entitled for CIF {cif} needs a new authorization", code=code)

    async def _pause(self, connection_id: str, reason: str) -> None:
        async with self.uow() as uow:
            await ledger.pause_connection(uow.session, connection_id, reason)
            await uow.commit()

    async def _token(self, connection_id: str, *, refresh: bool = False) -> InternalToken:
        """auth's token; a permanent refusal pauses the connection (SyncPaused), a transient one is AuthUnavailable."""
        try:
            if not refresh:
                return await self.tokens.access_token(connection_id)
            try:
                return await self.tokens.refresh(connection_id)
            except TokenUnavailable as e:
                if e.permanent or e.status_code is None:
                    raise
                # auth could not refresh just now (ANAF failed to renew, or another caller's renewal is under
                # way): its current token may already be a renewed one, so try it and let ANAF's answer decide
                return await self.tokens.access_token(connection_id)
        except TokenUnavailable as e:
            if e.permanent:
                await self._pause(connection_id, PAUSE_REASONS[e.reason])
                raise SyncPaused("the connection needs a new ANAF authorization") from e
            raise _auth_unavailable(e) from e

    async def with_token(self, connection_id: str, call: Callable[[str], Awaitable[T]]) -> T:
        """Run an ANAF call with the connection's token; after an ANAF 401/403 ask auth to refresh once."""
        tok = await self._token(connection_id)
        try:
            return await call(tok.access_token)
        except Unauthorized:
            tok = await self._token(connection_id, refresh=True)
            return await call(tok.access_token)
