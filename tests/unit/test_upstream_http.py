"""How every upstream adapter reads a provider's HTTP answer (``upstream.http``): which
status means which ``ErrorKind``, ``Retry-After`` in seconds or as a date, and which
transport failures mean the provider may have taken the job."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from imagegate.backends.upstream import http
from imagegate.backends.upstream.base import ErrorKind, UpstreamError

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class FrozenWallClock:
    """Stands in for the ``time`` module inside ``upstream.http``."""

    def __init__(self, now: datetime) -> None:
        self.now = now.timestamp()

    def time(self) -> float:
        return self.now


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> FrozenWallClock:
    clock = FrozenWallClock(NOW)
    monkeypatch.setattr(http, "time", clock)
    return clock


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body if body is not None else {}, headers=headers)


def kind_of(response: httpx.Response, *, sent_job: bool = True) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        http.check(response, "acme", sent_job=sent_job)
    return info.value


# --- check -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 302])
def test_answers_below_400_pass(status: int) -> None:
    http.check(httpx.Response(status), "acme", sent_job=True)


def test_429_is_rate_with_retry_after_in_seconds() -> None:
    error = kind_of(answer(429, {"message": "slow down"}, {"Retry-After": "12"}))
    assert error.kind == "rate"
    assert error.retry_after_s == 12.0
    assert error.message == "acme answered 429: slow down"


def test_429_is_rate_with_retry_after_as_an_http_date(frozen: FrozenWallClock) -> None:
    when = email.utils.format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    error = kind_of(answer(429, {"message": "slow down"}, {"Retry-After": when}))
    assert error.kind == "rate"
    assert error.retry_after_s == 90.0


def test_429_without_retry_after_has_none() -> None:
    error = kind_of(answer(429, {"message": "slow down"}))
    assert (error.kind, error.retry_after_s) == ("rate", None)


@pytest.mark.parametrize("status", [401, 402])
def test_401_and_402_are_the_keys_fault(status: int) -> None:
    assert kind_of(answer(status, {"message": "no"})).kind == "key"


@pytest.mark.parametrize(
    "message",
    [
        "Your prompt was blocked by our content policy",
        "NSFW content detected",
        "flagged by the safety system",
    ],
)
def test_403_about_content_is_content(message: str) -> None:
    assert kind_of(answer(403, {"detail": message})).kind == "content"


def test_a_plain_403_is_a_key_without_access() -> None:
    assert kind_of(answer(403, {"message": "forbidden"})).kind == "key"


@pytest.mark.parametrize(
    "message", ["Insufficient balance", "You exceeded your current quota", "billing hard limit"]
)
def test_a_400_about_money_is_the_keys_fault(message: str) -> None:
    assert kind_of(answer(400, {"error": {"message": message}})).kind == "key"


def test_a_plain_400_is_rejected() -> None:
    error = kind_of(answer(400, {"detail": [{"msg": "prompt too long", "type": "value_error"}]}))
    assert error.kind == "rejected"
    assert error.message == "acme answered 400: prompt too long"


def test_a_400_about_content_is_content() -> None:
    assert kind_of(answer(400, {"message": "moderation: blocked"})).kind == "content"


@pytest.mark.parametrize("status", [500, 503])
@pytest.mark.parametrize("sent_job", [True, False])
def test_500_and_503_are_transient(status: int, sent_job: bool) -> None:
    assert kind_of(answer(status, {"message": "oops"}), sent_job=sent_job).kind == "transient"


@pytest.mark.parametrize("status", [502, 504, 524])
def test_a_lost_answer_to_a_submit_is_unknown(status: int) -> None:
    assert kind_of(answer(status), sent_job=True).kind == "unknown"


@pytest.mark.parametrize("status", [502, 504, 524])
def test_a_lost_answer_to_a_read_is_transient(status: int) -> None:
    assert kind_of(answer(status), sent_job=False).kind == "transient"


def test_a_providers_own_code_overrides_its_status() -> None:
    codes: dict[str, ErrorKind] = {"insufficient_quota": "key"}
    body = {"error": {"message": "quota", "type": "requests", "code": "insufficient_quota"}}
    with pytest.raises(UpstreamError) as info:
        http.check(answer(429, body), "openai", sent_job=True, codes=codes)
    assert info.value.kind == "key"


def test_a_body_that_is_not_json_is_quoted_in_the_message() -> None:
    error = kind_of(httpx.Response(503, text="upstream connect error"))
    assert error.message == "acme answered 503: upstream connect error"


# --- retry_after -------------------------------------------------------------------------


def test_retry_after_absent_is_none() -> None:
    assert http.retry_after(httpx.Response(429)) is None


@pytest.mark.parametrize(("value", "seconds"), [("0", 0.0), ("3", 3.0), ("1.5", 1.5)])
def test_retry_after_in_seconds(value: str, seconds: float) -> None:
    assert http.retry_after(httpx.Response(429, headers={"Retry-After": value})) == seconds


def test_retry_after_as_a_date_counts_from_now(frozen: FrozenWallClock) -> None:
    when = email.utils.format_datetime(NOW + timedelta(minutes=2), usegmt=True)
    assert http.retry_after(httpx.Response(503, headers={"Retry-After": when})) == 120.0


def test_retry_after_a_date_already_past_is_zero(frozen: FrozenWallClock) -> None:
    when = email.utils.format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert http.retry_after(httpx.Response(503, headers={"Retry-After": when})) == 0.0


def test_retry_after_a_negative_number_is_zero() -> None:
    assert http.retry_after(httpx.Response(429, headers={"Retry-After": "-5"})) == 0.0


@pytest.mark.parametrize("value", ["soon", "Tomorrow morning", "inf"])
def test_retry_after_that_is_neither_seconds_nor_a_date_is_ignored(value: str) -> None:
    # RFC 9110: delta-seconds or an HTTP-date. Anything else must not break reading the
    # answer (a ValueError would escape ``check`` instead of its UpstreamError) nor make
    # the worker wait forever.
    assert http.retry_after(httpx.Response(429, headers={"Retry-After": value})) is None


def test_a_429_with_a_garbled_retry_after_is_still_rate() -> None:
    error = kind_of(answer(429, {"message": "slow"}, {"Retry-After": "soon"}))
    assert (error.kind, error.retry_after_s) == ("rate", None)


# --- request -----------------------------------------------------------------------------


def client_raising(exc_type: type[httpx.TransportError]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type("boom", request=request)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("sent_job", [True, False])
async def test_a_refused_connection_is_transient(sent_job: bool) -> None:
    async with client_raising(httpx.ConnectError) as client:
        with pytest.raises(UpstreamError) as info:
            await http.request(client, "POST", "https://p.example/jobs", "acme", sent_job=sent_job)
    assert info.value.kind == "transient"
    assert info.value.message == "acme could not be reached: ConnectError"
    assert isinstance(info.value.__cause__, httpx.ConnectError)


async def test_a_connect_timeout_is_transient_even_for_a_submit() -> None:
    async with client_raising(httpx.ConnectTimeout) as client:
        with pytest.raises(UpstreamError) as info:
            await http.request(client, "POST", "https://p.example/jobs", "acme", sent_job=True)
    assert info.value.kind == "transient"


async def test_a_read_timeout_after_a_submit_is_unknown() -> None:
    async with client_raising(httpx.ReadTimeout) as client:
        with pytest.raises(UpstreamError) as info:
            await http.request(client, "POST", "https://p.example/jobs", "acme", sent_job=True)
    assert info.value.kind == "unknown"
    assert info.value.message == "acme sent no answer: ReadTimeout boom"


async def test_a_read_timeout_of_a_read_is_transient() -> None:
    async with client_raising(httpx.ReadTimeout) as client:
        with pytest.raises(UpstreamError) as info:
            await http.request(client, "GET", "https://p.example/jobs/1", "acme")
    assert info.value.kind == "transient"


async def test_request_checks_the_answer_and_returns_a_success() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/ok":
            return httpx.Response(200, json={"id": "j1"})
        return httpx.Response(504, json={"message": "gateway timeout"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        response = await http.request(
            client, "POST", "https://p.example/ok", "acme", sent_job=True, json={"a": 1}
        )
        assert response.json() == {"id": "j1"}
        assert seen[0].content == b'{"a":1}'
        with pytest.raises(UpstreamError) as info:
            await http.request(client, "POST", "https://p.example/lost", "acme", sent_job=True)
    assert info.value.kind == "unknown"
    assert info.value.message == "acme answered 504: gateway timeout"
