"""Checking a webhook from imagegate: the Standard Webhooks scheme (SPEC §5), an
HMAC-SHA256 over ``<webhook-id>.<webhook-timestamp>.<body>`` with the account's webhook
secret, base64 in ``webhook-signature`` as ``v1,<signature>`` (several, space-separated,
while a secret is being rotated).

    from imagegate.client.webhooks import verify
    prediction = verify(request_body, request_headers, secret="whsec_...")
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from imagegate.client._errors import ImagegateClientError

TOLERANCE_S = 300  # older or newer deliveries are refused: a replay cannot be reused later


class WebhookVerificationError(ImagegateClientError):
    pass


def _key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for a delivery (what the server sends)."""
    message = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance_s: int = TOLERANCE_S,
    now: float | None = None,
) -> Any:
    """The delivery's JSON payload, if it is signed with ``secret`` and recent; otherwise
    ``WebhookVerificationError``."""
    raw = body.encode() if isinstance(body, str) else body
    lower = {name.lower(): value for name, value in headers.items()}
    try:
        webhook_id = lower["webhook-id"]
        stamp = int(lower["webhook-timestamp"])
        offered = lower["webhook-signature"].split()
    except (KeyError, ValueError) as exc:
        raise WebhookVerificationError("missing or malformed webhook-* headers") from exc
    if abs((time.time() if now is None else now) - stamp) > tolerance_s:
        raise WebhookVerificationError("the delivery's timestamp is too old or too new")
    expected = sign(secret, webhook_id, stamp, raw).partition(",")[2]
    for signature in offered:
        version, _, value = signature.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return json.loads(raw)
    raise WebhookVerificationError("no signature matches the secret")
