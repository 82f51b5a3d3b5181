"""The SDK's webhook verifier follows Standard Webhooks: its published example signs to
the published signature, and tampering, staleness and wrong secrets are refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagegate.client.webhooks import WebhookVerificationError, sign, verify

# The example of the Standard Webhooks specification.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
STAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def headers(signature: str = SIGNATURE, stamp: int = STAMP) -> dict[str, str]:
    return {"Webhook-Id": MSG_ID, "Webhook-Timestamp": str(stamp), "Webhook-Signature": signature}


def test_the_specifications_example_signs_and_verifies() -> None:
    assert sign(SECRET, MSG_ID, STAMP, BODY) == SIGNATURE
    assert verify(BODY, headers(), SECRET, now=STAMP + 10) == {"test": 2432232314}
    rotated = f"v1,bm90IGl0 {SIGNATURE}"  # an old secret's signature beside the new one's
    assert verify(BODY, headers(rotated), SECRET, now=STAMP)


@pytest.mark.parametrize(
    ("body", "hdrs", "secret", "now", "message"),
    [
        (b'{"test": 1}', headers(), SECRET, STAMP, "no signature matches"),
        (BODY, headers(), "whsec_" + "QUFBQQ==", STAMP, "no signature matches"),
        (BODY, headers(), SECRET, STAMP + 301, "too old or too new"),
        (BODY, {"webhook-id": MSG_ID}, SECRET, STAMP, "missing or malformed"),
        (BODY, headers("v2," + SIGNATURE[3:]), SECRET, STAMP, "no signature matches"),
    ],
)
def test_tampered_stale_or_foreign_deliveries_are_refused(
    body: bytes, hdrs: dict[str, str], secret: str, now: int, message: str
) -> None:
    with pytest.raises(WebhookVerificationError, match=message):
        verify(body, hdrs, secret, now=now)


@given(st.binary(max_size=200), st.text(min_size=1, max_size=40), st.integers(0, 2**33))
def test_what_is_signed_verifies_and_any_changed_byte_does_not(
    payload: bytes, secret: str, stamp: int
) -> None:
    body = b'{"data": "' + payload.hex().encode() + b'"}'
    signed = sign(secret, "id", stamp, body)
    hdrs = {"webhook-id": "id", "webhook-timestamp": str(stamp), "webhook-signature": signed}
    assert verify(body, hdrs, secret, now=stamp) == {"data": payload.hex()}
    with pytest.raises(WebhookVerificationError):
        verify(body + b" ", hdrs, secret, now=stamp)
