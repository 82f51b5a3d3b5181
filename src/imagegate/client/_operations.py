"""What each SDK call does, written once for the sync and the async client.

An operation is a generator: it yields a ``Call`` (one HTTP request, retried by the
driver) or a ``Sleep``, receives the answer, and returns its result. ``Client`` drives it
with httpx's sync client and ``time.sleep``, ``AsyncClient`` with httpx's async client and
``anyio.sleep``; nothing else differs between them.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from imagegate.client._errors import (
    CONTENT_BLOCKED,
    APITimeoutError,
    OutputBlockedError,
    PredictionFailedError,
    error_from_response,
)
from imagegate.wire import ModelInfo, Prediction, PredictionPage

T = TypeVar("T")
TERMINAL = ("completed", "failed")
_CONTENT_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
}
# A long-poll asks the server to hold the answer this long at most (its own cap applies).
LONG_POLL_S = 30.0


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # relative to the base URL, or an absolute URL (output files)
    json: Any = None
    params: dict[str, Any] | None = None
    files: dict[str, Any] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None  # over the client's, for long-polls
    authorized: bool = True
    # A submit may be retried only under one Idempotency-Key, so a retry never makes a
    # second job; reads are always safe to retry.
    retry: bool = True
    expect_json: bool = True


@dataclass(frozen=True)
class Sleep:
    seconds: float


Step = Call | Sleep
Operation = Generator[Step, Any, T]


def envelope_data(response: httpx.Response) -> Any:
    """The ``data`` of a success envelope; an error envelope raises its error class."""
    if response.status_code >= 300:
        raise error_from_response(response)
    body = response.json()
    if isinstance(body, dict) and body.get("code", 200) >= 300:
        raise error_from_response(response)
    return body["data"] if isinstance(body, dict) and "data" in body else body


@dataclass(frozen=True)
class Image:
    """One output: its URL (or data URI) and its bytes."""

    url: str
    data: bytes
    nsfw: bool

    def save(self, path: str | Path) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.data)
        return target


@dataclass(frozen=True)
class Result:
    prediction: Prediction
    images: list[Image]

    @property
    def id(self) -> str:
        return self.prediction.id

    def save_all(self, directory: str | Path, stem: str | None = None) -> list[Path]:
        """Each image as ``<stem or id>-<i>.<ext>`` in ``directory``; the paths."""
        paths = []
        for index, image in enumerate(self.images):
            ext = _extension(image)
            paths.append(image.save(Path(directory) / f"{stem or self.id}-{index}.{ext}"))
        return paths


def _extension(image: Image) -> str:
    if image.data.startswith(b"\x89PNG"):
        return "png"
    if image.data.startswith(b"\xff\xd8"):
        return "jpg"
    if image.data[8:12] == b"WEBP":
        return "webp"
    return "bin"


def submit(
    route: str, task: str, params: dict[str, Any], idempotency_key: str | None
) -> Operation[Prediction]:
    key = idempotency_key or str(uuid.uuid4())
    response = yield Call(
        "POST", f"/api/v3/{route}/{task}", json=params, headers={"Idempotency-Key": key}
    )
    return Prediction.model_validate(envelope_data(response))


def get(prediction_id: str) -> Operation[Prediction]:
    response = yield Call("GET", f"/api/v3/predictions/{prediction_id}/result")
    return Prediction.model_validate(envelope_data(response))


def wait(prediction_id: str, timeout: float | None) -> Operation[Prediction]:
    """Until the job ends: long-polls where the server holds the answer (imagegate), and
    polls with backoff where it answers at once (the hosted APIs)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    backoff = 0.5
    while True:
        left = LONG_POLL_S if deadline is None else deadline - time.monotonic()
        if left <= 0:
            raise APITimeoutError(f"prediction {prediction_id} had not ended after {timeout} s")
        hold = min(LONG_POLL_S, left)
        asked = time.monotonic()
        response = yield Call(
            "GET",
            f"/api/v3/predictions/{prediction_id}/result",
            params={"wait": round(hold, 1)},
            timeout=hold + 30,
        )
        prediction = Prediction.model_validate(envelope_data(response))
        if prediction.status in TERMINAL:
            return prediction
        if time.monotonic() - asked < min(hold, 1.0) / 2:
            # Answered at once: this server does not long-poll, so poll gently.
            yield Sleep(min(backoff, max(0.0, left)))
            backoff = min(backoff * 1.5, 5.0)


def cancel(prediction_id: str) -> Operation[Prediction]:
    response = yield Call("POST", f"/api/v3/predictions/{prediction_id}/cancel")
    return Prediction.model_validate(envelope_data(response))


def page(number: int, page_size: int, filters: dict[str, Any]) -> Operation[PredictionPage]:
    given = {name: value for name, value in filters.items() if value is not None}
    params = {"page": number, "page_size": page_size, **given}
    response = yield Call("GET", "/api/v3/predictions", params=params)
    return PredictionPage.model_validate(envelope_data(response))


def upload(data: bytes, filename: str, content_type: str) -> Operation[str]:
    response = yield Call(
        "POST", "/api/v3/media/upload/binary", files={"file": (filename, data, content_type)}
    )
    return str(envelope_data(response)["download_url"])


def models() -> Operation[list[ModelInfo]]:
    response = yield Call("GET", "/api/v3/models")
    return [ModelInfo.model_validate(item) for item in envelope_data(response)]


def download(url: str) -> Operation[bytes]:
    if url.startswith("data:"):
        return base64.b64decode(url.partition(",")[2])
    response = yield Call("GET", url, authorized=False, expect_json=False)
    if response.status_code >= 300:
        raise error_from_response(response)
    data: bytes = response.content
    return data


def result(prediction: Prediction) -> Operation[Result]:
    """A finished job with its images downloaded; a failed one raises."""
    if prediction.status == "failed":
        error = prediction.error or "failed"
        kind = OutputBlockedError if error == CONTENT_BLOCKED else PredictionFailedError
        raise kind(f"prediction {prediction.id} failed: {error}", prediction)
    images = []
    for index, url in enumerate(prediction.outputs):
        data = yield from download(url)
        nsfw = (
            prediction.has_nsfw_contents[index]
            if index < len(prediction.has_nsfw_contents)
            else False
        )
        images.append(Image(url=url, data=data, nsfw=nsfw))
    return Result(prediction=prediction, images=images)


def run(
    route: str,
    task: str,
    params: dict[str, Any],
    idempotency_key: str | None,
    timeout: float | None,
) -> Operation[Result]:
    prediction = yield from submit(route, task, params, idempotency_key)
    if prediction.status not in TERMINAL:
        prediction = yield from wait(prediction.id, timeout)
    return (yield from result(prediction))


def read_file(path: str | Path) -> tuple[bytes, str, str]:
    """A local image's bytes, file name and content type."""
    source = Path(path)
    data = source.read_bytes()
    kinds = {
        ".png": "image/png",
        ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg",
        ".webp": "image/webp",
    }
    return data, source.name, kinds.get(source.suffix.lower(), "application/octet-stream")
