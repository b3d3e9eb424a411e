"""Stand-in for auth in the submissions process test: the internal token endpoints (tokens minted by the emulator's
admin API, connection id = emulator certificate id), the JWKS of platform tokens, and `/__test/mint` to get one.
Run: `EMULATOR_URL=... python -m uvicorn submissions_fake_auth:app --port N`."""
from __future__ import annotations

import os

import httpx
from fastapi import FastAPI, Header, HTTPException
from spvhub_common.testtokens import TokenMinter

app = FastAPI()
EMULATOR = os.environ.get("EMULATOR_URL", "http://127.0.0.1:18080")
CLIENT_ID = "6f97e46422c3ed35112f7e85aa6e15462d3b4f475669b753"
SERVICE_TOKEN = os.environ.get("SERVICE_TOKEN", "dev-service-token")
MINTER = TokenMinter()


async def _mint(connection_id: str) -> dict[str, object]:
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{EMULATOR}/__admin/tokens", json={"client_id": CLIENT_ID, "certificate": connection_id})
    if r.status_code != 200:
        raise HTTPException(404, "no_connection")
    return {"connection_id": connection_id, "access_token": r.json()["access_token"], "expires_at": None,
            "certificate_serial": "", "company_cif": "", "status": "active"}


@app.get("/internal/connections/{connection_id}/access-token")
async def token(connection_id: str, x_service_token: str = Header("")) -> dict[str, object]:
    if x_service_token != SERVICE_TOKEN:
        raise HTTPException(401)
    return await _mint(connection_id)


@app.post("/internal/connections/{connection_id}/refresh")
async def refresh(connection_id: str, x_service_token: str = Header("")) -> dict[str, object]:
    if x_service_token != SERVICE_TOKEN:
        raise HTTPException(401)
    return await _mint(connection_id)


@app.get("/.well-known/jwks.json")
async def jwks() -> dict[str, object]:
    return MINTER.jwks()


@app.post("/__test/mint/{user_id}")
async def mint(user_id: str) -> dict[str, str]:
    return {"authorization": f"Bearer {MINTER.mint(user_id)}"}
