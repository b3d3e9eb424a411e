"""JWT signing keys: RSA keys kept encrypted in the database (generated on first start, `kid` for rotation),
the JWKS they publish, and a verifier that reads them straight from the database."""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from spvhub_common.clock import Clock
from spvhub_common.crypto import SecretBox
from spvhub_common.security import JwksVerifier
from sqlalchemy import insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from spvhub_auth.adapters.orm import signing_keys

KEY_RETENTION = timedelta(days=2)  # retired keys stay in the JWKS while tokens they signed may still be in use


class KeyRing:
    def __init__(self, engine: AsyncEngine, box: SecretBox, clock: Clock) -> None:
        self.engine = engine
        self.box = box
        self.clock = clock
        self.active_kid: str | None = None
        self._private: Any = None
        self._jwks: dict[str, Any] = {"keys": []}
        self._loaded_at = 0.0

    async def ensure(self) -> None:
        """Create the first signing key if none is active (serialised across replicas), then load the keys."""
        async with self.engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('spvhub.auth.signing_keys'))"))
            has = (await conn.execute(select(signing_keys.c.kid).where(signing_keys.c.active))).first()
            if has is None:
                await conn.execute(insert(signing_keys).values(**self._new_key_row(active=True)))
        await self.load()

    def _new_key_row(self, active: bool) -> dict[str, Any]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = f"auth-{self.clock.now():%Y%m%d}-{uuid.uuid4().hex[:8]}"
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        jwk.update(kid=kid, use="sig", alg="RS256")
        return {"kid": kid, "private_key_enc": self.box.encrypt(pem, aad=f"signing_key:{kid}"), "public_jwk": jwk,
                "active": active, "created_at": self.clock.now()}

    async def rotate(self) -> str:
        """A new active key; the previous one stays published for KEY_RETENTION so its tokens still verify."""
        now = self.clock.now()
        row = self._new_key_row(active=True)
        async with self.engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('spvhub.auth.signing_keys'))"))
            await conn.execute(update(signing_keys).where(signing_keys.c.active).values(active=False, retired_at=now))
            await conn.execute(insert(signing_keys).values(**row))
        await self.load()
        return str(row["kid"])

    async def load(self) -> None:
        cutoff = self.clock.now() - KEY_RETENTION
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(signing_keys).where(
                or_(signing_keys.c.active, signing_keys.c.retired_at > cutoff)))).all()
        keys = []
        for r in rows:
            keys.append(dict(r.public_jwk))
            if r.active:
                pem = self.box.decrypt(bytes(r.private_key_enc), aad=f"signing_key:{r.kid}")
                self._private = serialization.load_pem_private_key(pem.encode(), password=None)
                self.active_kid = r.kid
        self._jwks = {"keys": keys}
        self._loaded_at = time.monotonic()

    def jwks(self) -> dict[str, Any]:
        return self._jwks

    async def jwks_fresh(self, max_age: float = 30.0) -> dict[str, Any]:
        if time.monotonic() - self._loaded_at > max_age:
            await self.load()
        return self._jwks

    def sign(self, claims: dict[str, Any]) -> str:
        if self._private is None or self.active_kid is None:
            raise RuntimeError("signing keys are not loaded")
        return jwt.encode(claims, self._private, algorithm="RS256", headers={"kid": self.active_kid})

    def verify(self, token: str, audience: str, issuer: str) -> dict[str, Any]:
        """Verify a token this service signed (raises jwt.PyJWTError)."""
        kid = jwt.get_unverified_header(token).get("kid")
        for k in self._jwks["keys"]:
            if k["kid"] == kid:
                return jwt.decode(token, jwt.PyJWK(k).key, algorithms=["RS256"], audience=audience, issuer=issuer,
                                  options={"verify_exp": False})
        raise jwt.InvalidKeyError("unknown kid")


class KeyRingVerifier(JwksVerifier):
    """The auth service verifies platform tokens against its own keys (no HTTP call to itself)."""

    def __init__(self, ring: KeyRing, issuer: str, audience: str) -> None:
        super().__init__("", issuer, audience, static_jwks=ring.jwks())
        self.ring = ring

    async def _refresh(self) -> None:
        await self.ring.load()
        self._load(self.ring.jwks())


def expires(now: datetime, seconds: int) -> datetime:
    return now + timedelta(seconds=seconds)
