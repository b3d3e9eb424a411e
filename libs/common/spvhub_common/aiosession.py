"""An aiohttp session bound to the event loop it was made on: a ClientSession (and its connection pool) cannot be
used from another loop, so a store or client that may outlive a loop (tests run one per test) makes its session on
first use, and again when the loop changed or the session was closed."""
from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp

__all__ = ["LoopSession"]


class LoopSession:
    def __init__(self, factory: Callable[[], aiohttp.ClientSession]) -> None:
        self._factory = factory
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = self._factory()
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
