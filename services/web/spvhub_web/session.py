"""The person's session: their own platform tokens, CSRF token and language in one cookie, encrypted and
authenticated (Fernet: AES-CBC + HMAC-SHA256), HttpOnly, SameSite=Lax, Secure over https. Nothing is kept
server-side."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

COOKIE = "spvhub_session"


class Session:
    """What one browser carries; `dirty` tells the response middleware to write the cookie again."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = data or {}
        self.dirty = False
        if "csrf" not in self.data:
            self.data["csrf"] = secrets.token_urlsafe(24)
            self.dirty = True

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, **kw: Any) -> None:
        self.data.update(kw)
        self.dirty = True

    def pop(self, *keys: str) -> None:
        for k in keys:
            self.data.pop(k, None)
        self.dirty = True

    @property
    def signed_in(self) -> bool:
        return bool(self.data.get("access_token"))

    @property
    def csrf(self) -> str:
        return str(self.data["csrf"])

    def csrf_ok(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(str(presented), self.csrf)

    def sign_in(self, tokens: dict[str, Any]) -> None:
        user = tokens.get("user") or {}
        locale = user.get("locale") or self.data.get("locale")
        # a new CSRF token at every sign-in: a token seen before the login is worth nothing after it
        self.data = {"csrf": secrets.token_urlsafe(24), "locale": locale}
        self.set(access_token=tokens["access_token"], refresh_token=tokens.get("refresh_token"),
                 user={"id": user.get("id"), "name": user.get("name"), "email": user.get("email")})

    def sign_out(self) -> None:
        self.data = {"csrf": secrets.token_urlsafe(24), "locale": self.data.get("locale")}
        self.dirty = True


class SessionCodec:
    def __init__(self, key: str, max_age: int) -> None:
        derived = hashlib.sha256(b"spvhub-web-session\x00" + key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))
        self.max_age = max_age

    def dump(self, s: Session) -> str:
        return self._fernet.encrypt(json.dumps(s.data, separators=(",", ":")).encode()).decode()

    def load(self, raw: str | None) -> Session:
        if not raw:
            return Session()
        try:
            return Session(json.loads(self._fernet.decrypt(raw.encode(), ttl=self.max_age)))
        except (InvalidToken, ValueError):
            return Session()
