"""Identifiers and API keys.

Prediction ids start with a millisecond timestamp so that ordering by id is ordering by
submission time, which keeps the queue's claim order and the list's paging on one index.
API keys are ``ig_<key_id>_<secret>``: the key id is public and indexed, only a hash of the
secret is stored, and the hash is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

KEY_PREFIX = "ig"


def new_prediction_id(now_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{ms:012x}{secrets.token_hex(10)}"


def new_object_id() -> str:
    return secrets.token_hex(12)


@dataclass(frozen=True)
class ApiKeyParts:
    key_id: str
    secret: str

    @property
    def token(self) -> str:
        return f"{KEY_PREFIX}_{self.key_id}_{self.secret}"


def new_api_key() -> ApiKeyParts:
    return ApiKeyParts(key_id=secrets.token_hex(8), secret=secrets.token_urlsafe(32))


def parse_api_key(token: str) -> ApiKeyParts | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return ApiKeyParts(key_id=parts[1], secret=parts[2])


def hash_secret(secret: str) -> str:
    # The secret has 256 bits of entropy, so a plain SHA-256 cannot be brute-forced;
    # a slow password hash would only cost latency on every request.
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
