"""Mint platform access tokens for tests of services other than auth (same claims auth issues)."""
from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from spvhub_common.security import JwksVerifier


class TokenMinter:
    def __init__(self, issuer: str = "spvhub-auth", audience: str = "spvhub") -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = f"test-{uuid.uuid4().hex[:8]}"
        self.issuer = issuer
        self.audience = audience

    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update(kid=self.kid, use="sig", alg="RS256")
        return {"keys": [jwk]}

    def verifier(self) -> JwksVerifier:
        return JwksVerifier("", self.issuer, self.audience, static_jwks=self.jwks())

    def mint(self, user_id: str, email: str = "", name: str = "", locale: str = "ro", ttl: int = 900) -> str:
        now = int(time.time())
        claims = {"sub": user_id, "email": email, "name": name, "locale": locale, "typ": "access",
                  "iss": self.issuer, "aud": self.audience, "iat": now, "exp": now + ttl, "jti": uuid.uuid4().hex}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def headers(self, user_id: str, **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.mint(user_id, **kw)}"}
