"""Stand-in for auth in the submissions process test: the internal token endpoints of `fake_auth` (tokens
minted by the emulator's admin API), plus the JWKS of platform tokens and `/__test/mint` to get one.
Run: `EMULATOR_URL=... python -m uvicorn submissions_fake_auth:app --port N` (from this folder)."""
from __future__ import annotations

from fake_auth import app
from spvhub_devtools.testtokens import TokenMinter

MINTER = TokenMinter()


@app.get("/.well-known/jwks.json")
async def jwks() -> dict[str, object]:
    return MINTER.jwks()


@app.post("/__test/mint/{user_id}")
async def mint(user_id: str) -> dict[str, str]:
    return {"authorization": f"Bearer {MINTER.mint(user_id)}"}
