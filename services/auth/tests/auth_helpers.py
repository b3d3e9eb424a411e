"""Shared steps of the auth tests."""
from __future__ import annotations

import asyncio
from typing import Any


async def authorized(h: Any, cif: str, certificate: str = "acc", user: dict[str, Any] | None = None,
                     name: str = "Maria Ionescu") -> tuple[dict[str, Any], dict[str, Any]]:
    """A signed-up user with access to `cif` and an active connection for it (full browser flow)."""
    user = user or await h.signup(name=name)
    await h.grant(user["user"]["id"], cif)
    r = await h.authorize(user["headers"], cif, certificate=certificate)
    assert r.status_code == 200, r.text
    return r.json(), user


async def wait_for(pred: Any, timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        v = await pred()
        if v:
            return v
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
