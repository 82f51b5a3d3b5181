"""Signed, expiring URLs for stored files: possession of the URL is the permission."""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: bytes, key: str, expires: int) -> str:
    message = f"{key}\n{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:40]


def verify(secret: bytes, key: str, expires: int, signature: str, now: float) -> bool:
    if expires < now:
        return False
    return hmac.compare_digest(sign(secret, key, expires), signature)
