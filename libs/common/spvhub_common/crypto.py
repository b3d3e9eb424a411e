"""Secrets at rest: AES-256-GCM with a key id in every ciphertext, so keys can be rotated.

Format: b"v1:" + key_id + b":" + nonce(12) + ciphertext||tag; the associated data binds a value to its row.
"""
from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class SecretBox:
    def __init__(self, keys: dict[str, bytes], active_key_id: str) -> None:
        if active_key_id not in keys:
            raise ValueError("active key id has no key")
        for kid, k in keys.items():
            if len(k) != 32:
                raise ValueError(f"key {kid} must be 32 bytes (AES-256)")
            if ":" in kid:
                raise ValueError("key ids cannot contain ':'")
        self._keys = keys
        self.active_key_id = active_key_id

    @classmethod
    def from_config(cls, spec: str, active: str) -> SecretBox:
        """`spec` is `kid1:base64key1,kid2:base64key2` (from a Secret, never from git)."""
        keys = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            kid, b64 = part.split(":", 1)
            keys[kid] = base64.b64decode(b64)
        return cls(keys, active)

    def encrypt(self, plaintext: str, aad: str = "") -> bytes:
        nonce = os.urandom(12)
        ct = AESGCM(self._keys[self.active_key_id]).encrypt(nonce, plaintext.encode(), aad.encode())
        return b"v1:" + self.active_key_id.encode() + b":" + nonce + ct

    def decrypt(self, blob: bytes, aad: str = "") -> str:
        if not blob.startswith(b"v1:"):
            raise ValueError("unknown ciphertext format")
        kid, rest = blob[3:].split(b":", 1)
        key = self._keys.get(kid.decode())
        if key is None:
            raise ValueError(f"no key {kid.decode()!r} to decrypt with")
        return AESGCM(key).decrypt(rest[:12], rest[12:], aad.encode()).decode()

    def key_id_of(self, blob: bytes) -> str:
        return blob[3:].split(b":", 1)[0].decode()

    def needs_rotation(self, blob: bytes) -> bool:
        return self.key_id_of(blob) != self.active_key_id
