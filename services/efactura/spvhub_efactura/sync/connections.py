"""Which connection acts for a company, and its ANAF token (refreshed once after a 401/403)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from spvhub_common.anaf.errors import Unauthorized
from spvhub_common.uow import SqlUnitOfWork

from spvhub_efactura.adapters import ledger, queries
from spvhub_efactura.adapters.auth import NoConnection, ReauthorizationRequired, TokenProvider

T = TypeVar("T")


class UowFactory(Protocol):
    def __call__(self) -> SqlUnitOfWork: ...


class SyncPaused(Exception):
    """No entitled connection active here for the CIF, or a person must authorize again. `code` is stable:
    no_entitled_connection | no_filing_connection | reauthorization_required | connection_revoked."""

    def __init__(self, message: str, code: str = "reauthorization_required") -> None:
        super().__init__(message)
        self.code = code


class Connections:
    """The connection portfolio entitles for a company, and calls made with its token."""

    def __init__(self, uow: UowFactory, tokens: TokenProvider) -> None:
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

    async def with_token(self, connection_id: str, call: Callable[[str], Awaitable[T]]) -> T:
        """Run an ANAF call with the connection's token; after an ANAF 401/403 ask auth to refresh once."""
        try:
            tok = await self.tokens.token(connection_id)
        except (ReauthorizationRequired, NoConnection) as e:
            await self._pause(connection_id, f"auth: {type(e).__name__}")
            raise SyncPaused("the connection needs a new ANAF authorization") from e
        try:
            return await call(tok.token)
        except Unauthorized:
            try:
                tok = await self.tokens.refresh(connection_id)
            except (ReauthorizationRequired, NoConnection) as e:
                await self._pause(connection_id, f"auth: {type(e).__name__}")
                raise SyncPaused("the connection needs a new ANAF authorization") from e
            return await call(tok.token)
