"""``Client`` and ``AsyncClient``: the same methods, one over httpx's sync client and one
over its async client, both driving the operations in ``_operations``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx

from imagegate.client import _operations as ops
from imagegate.client._base import Config, connection_error
from imagegate.client._errors import APIConnectionError, error_from_response
from imagegate.client._handles import AsyncHandle, Handle
from imagegate.client._operations import Call, Operation, Result, Sleep
from imagegate.client._sse import EventParser
from imagegate.wire import ModelInfo, Prediction

T = TypeVar("T")


class _EventStream:
    """The state of one prediction's event stream across reconnects."""

    def __init__(self, prediction_id: str, max_reconnects: int) -> None:
        self.prediction_id = prediction_id
        self.max_reconnects = max_reconnects
        self.reconnects = 0
        self.last_id: str | None = None
        self.parser = EventParser()
        self.ended = False

    def call(self) -> Call:
        headers = {"Accept": "text/event-stream"}
        if self.last_id:
            headers["Last-Event-ID"] = self.last_id
        self.parser = EventParser()
        # Read timeout well past the server's 15 s keep-alive comments.
        return Call(
            "GET", f"/api/v3/predictions/{self.prediction_id}/events", headers=headers, timeout=60
        )

    def feed(self, line: str) -> Prediction | None:
        event = self.parser.feed(line)
        if event is None or not event.data:
            return None
        self.last_id = event.id or self.last_id
        prediction = Prediction.model_validate_json(event.data)
        self.ended = prediction.status in ops.TERMINAL
        if event.id:
            self.reconnects = 0  # progress: the next break gets the full allowance again
        return prediction

    def broke(self, exc: httpx.TransportError | None) -> None:
        """The stream ended before the job did; raise once reconnecting has failed."""
        self.reconnects += 1
        if self.reconnects > self.max_reconnects:
            if exc is not None:
                raise connection_error(exc) from exc
            raise APIConnectionError("the event stream kept closing before the job ended")

    def backoff(self) -> float:
        return float(min(5.0, 0.25 * 2**self.reconnects))


def _params(task: str | None, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    body = {k: v for k, v in params.items() if v is not None}
    if body.get("images"):
        body["images"] = [str(i) for i in body["images"]]
    return task or ("image-to-image" if body.get("images") else "text-to-image"), body


class Client:
    """A client of imagegate, or of any server of the v3 prediction API (GPTProto,
    WaveSpeedAI). ``base_url`` and ``api_key`` default to ``IMAGEGATE_BASE_URL`` and
    ``IMAGEGATE_API_KEY``."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 2,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.config = Config(base_url, api_key, timeout, max_retries)
        self._http = http_client or httpx.Client(timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: Call) -> httpx.Response:
        attempt = 0
        while True:
            response = None
            try:
                response = self._http.send(self.config.request(self._http, call))
            except httpx.TransportError as exc:
                if not self.config.should_retry(call, attempt, None):
                    raise connection_error(exc) from exc
            if response is not None and not self.config.should_retry(call, attempt, response):
                return response
            time.sleep(self.config.retry.delay(attempt, response))
            attempt += 1

    def _drive(self, operation: Operation[T]) -> T:
        try:
            step = next(operation)
            while True:
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    step = operation.send(None)
                else:
                    step = operation.send(self._send(step))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def submit(
        self,
        route: str,
        *,
        task: str | None = None,
        idempotency_key: str | None = None,
        **params: Any,
    ) -> Handle:
        """Submit a job; a handle on it (``.prediction`` as the server accepted it,
        ``.wait()``, ``.cancel()``, ``.result()``)."""
        path_task, body = _params(task, params)
        return Handle(self, self._drive(ops.submit(route, path_task, body, idempotency_key)))

    def run(
        self,
        route: str,
        *,
        task: str | None = None,
        max_wait: float | None = 600.0,
        idempotency_key: str | None = None,
        **params: Any,
    ) -> Result:
        """Submit, wait for the end, download the images. A failed job raises."""
        path_task, body = _params(task, params)
        return self._drive(ops.run(route, path_task, body, idempotency_key, max_wait))

    def get(self, prediction_id: str) -> Prediction:
        return self._drive(ops.get(prediction_id))

    def wait(self, prediction_id: str, max_wait: float | None = 600.0) -> Prediction:
        return self._drive(ops.wait(prediction_id, max_wait))

    def result(self, prediction: Prediction) -> Result:
        return self._drive(ops.result(prediction))

    def cancel(self, prediction_id: str) -> Prediction:
        return self._drive(ops.cancel(prediction_id))

    def predictions(self, page_size: int = 50, **filters: Any) -> Iterator[Prediction]:
        """Every prediction of the account, newest first, fetched a page at a time."""
        number = 1
        while True:
            page = self._drive(ops.page(number, page_size, filters))
            yield from page.items
            if number * page_size >= page.total or not page.items:
                return
            number += 1

    def events(self, prediction_id: str, *, max_reconnects: int = 5) -> Iterator[Prediction]:
        """The prediction each time its status or step moves on (Server-Sent Events),
        until it has ended; a dropped stream is resumed where it broke off."""
        stream = _EventStream(prediction_id, max_reconnects)
        while True:
            request = self.config.request(self._http, stream.call())
            try:
                response = self._http.send(request, stream=True)
                try:
                    if response.status_code >= 300:
                        response.read()
                        raise error_from_response(response)
                    for line in response.iter_lines():
                        if (prediction := stream.feed(line)) is not None:
                            yield prediction
                            if stream.ended:
                                return
                finally:
                    response.close()
            except httpx.TransportError as exc:
                stream.broke(exc)
            else:
                stream.broke(None)
            time.sleep(stream.backoff())

    def upload(self, file: str | Path | bytes, filename: str = "image.png") -> str:
        """Upload an image; its URL, usable in ``images``."""
        data, name, kind = (
            (file, filename, "application/octet-stream")
            if isinstance(file, bytes)
            else ops.read_file(file)
        )
        return self._drive(ops.upload(data, name, kind))

    def models(self) -> list[ModelInfo]:
        return self._drive(ops.models())


class AsyncClient:
    """``Client``'s twin for asyncio and trio (through anyio)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 2,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = Config(base_url, api_key, timeout, max_retries)
        self._http = http_client or httpx.AsyncClient(timeout=timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _send(self, call: Call) -> httpx.Response:
        attempt = 0
        while True:
            response = None
            try:
                response = await self._http.send(self.config.request(self._http, call))
            except httpx.TransportError as exc:
                if not self.config.should_retry(call, attempt, None):
                    raise connection_error(exc) from exc
            if response is not None and not self.config.should_retry(call, attempt, response):
                return response
            await anyio.sleep(self.config.retry.delay(attempt, response))
            attempt += 1

    async def _drive(self, operation: Operation[T]) -> T:
        try:
            step = next(operation)
            while True:
                if isinstance(step, Sleep):
                    await anyio.sleep(step.seconds)
                    step = operation.send(None)
                else:
                    step = operation.send(await self._send(step))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def submit(
        self,
        route: str,
        *,
        task: str | None = None,
        idempotency_key: str | None = None,
        **params: Any,
    ) -> AsyncHandle:
        path_task, body = _params(task, params)
        accepted = await self._drive(ops.submit(route, path_task, body, idempotency_key))
        return AsyncHandle(self, accepted)

    async def run(
        self,
        route: str,
        *,
        task: str | None = None,
        max_wait: float | None = 600.0,
        idempotency_key: str | None = None,
        **params: Any,
    ) -> Result:
        path_task, body = _params(task, params)
        return await self._drive(ops.run(route, path_task, body, idempotency_key, max_wait))

    async def get(self, prediction_id: str) -> Prediction:
        return await self._drive(ops.get(prediction_id))

    async def wait(self, prediction_id: str, max_wait: float | None = 600.0) -> Prediction:
        return await self._drive(ops.wait(prediction_id, max_wait))

    async def result(self, prediction: Prediction) -> Result:
        return await self._drive(ops.result(prediction))

    async def cancel(self, prediction_id: str) -> Prediction:
        return await self._drive(ops.cancel(prediction_id))

    async def predictions(self, page_size: int = 50, **filters: Any) -> AsyncIterator[Prediction]:
        number = 1
        while True:
            page = await self._drive(ops.page(number, page_size, filters))
            for item in page.items:
                yield item
            if number * page_size >= page.total or not page.items:
                return
            number += 1

    async def events(
        self, prediction_id: str, *, max_reconnects: int = 5
    ) -> AsyncIterator[Prediction]:
        stream = _EventStream(prediction_id, max_reconnects)
        while True:
            request = self.config.request(self._http, stream.call())
            try:
                response = await self._http.send(request, stream=True)
                try:
                    if response.status_code >= 300:
                        await response.aread()
                        raise error_from_response(response)
                    async for line in response.aiter_lines():
                        if (prediction := stream.feed(line)) is not None:
                            yield prediction
                            if stream.ended:
                                return
                finally:
                    await response.aclose()
            except httpx.TransportError as exc:
                stream.broke(exc)
            else:
                stream.broke(None)
            await anyio.sleep(stream.backoff())

    async def upload(self, file: str | Path | bytes, filename: str = "image.png") -> str:
        data, name, kind = (
            (file, filename, "application/octet-stream")
            if isinstance(file, bytes)
            else ops.read_file(file)
        )
        return await self._drive(ops.upload(data, name, kind))

    async def models(self) -> list[ModelInfo]:
        return await self._drive(ops.models())
