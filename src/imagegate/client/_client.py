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
from imagegate.client._handles import AsyncHandle, Handle
from imagegate.client._operations import Call, Operation, Result, Sleep
from imagegate.wire import ModelInfo, Prediction

T = TypeVar("T")


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

    async def upload(self, file: str | Path | bytes, filename: str = "image.png") -> str:
        data, name, kind = (
            (file, filename, "application/octet-stream")
            if isinstance(file, bytes)
            else ops.read_file(file)
        )
        return await self._drive(ops.upload(data, name, kind))

    async def models(self) -> list[ModelInfo]:
        return await self._drive(ops.models())
