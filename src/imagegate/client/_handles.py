"""What ``submit()`` returns: the prediction as the server accepted it, with the calls
that follow a job (refresh, wait, cancel, result)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from imagegate.client._operations import Result
from imagegate.wire import Prediction

if TYPE_CHECKING:
    from imagegate.client._client import AsyncClient, Client


class _Handle:
    def __init__(self, prediction: Prediction) -> None:
        self.prediction = prediction

    @property
    def id(self) -> str:
        return self.prediction.id

    @property
    def status(self) -> str:
        return self.prediction.status

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.status}>"


class Handle(_Handle):
    def __init__(self, client: Client, prediction: Prediction) -> None:
        super().__init__(prediction)
        self._client = client

    def refresh(self) -> Prediction:
        self.prediction = self._client.get(self.id)
        return self.prediction

    def wait(self, max_wait: float | None = 600.0) -> Prediction:
        self.prediction = self._client.wait(self.id, max_wait)
        return self.prediction

    def cancel(self) -> Prediction:
        self.prediction = self._client.cancel(self.id)
        return self.prediction

    def result(self, max_wait: float | None = 600.0) -> Result:
        """Wait for the end and download the images; a failed job raises."""
        return self._client.result(self.wait(max_wait))

    def events(self) -> Iterator[Prediction]:
        """The job as it moves on, live, until it has ended (imagegate's SSE)."""
        for prediction in self._client.events(self.id):
            self.prediction = prediction
            yield prediction


class AsyncHandle(_Handle):
    def __init__(self, client: AsyncClient, prediction: Prediction) -> None:
        super().__init__(prediction)
        self._client = client

    async def refresh(self) -> Prediction:
        self.prediction = await self._client.get(self.id)
        return self.prediction

    async def wait(self, max_wait: float | None = 600.0) -> Prediction:
        self.prediction = await self._client.wait(self.id, max_wait)
        return self.prediction

    async def cancel(self) -> Prediction:
        self.prediction = await self._client.cancel(self.id)
        return self.prediction

    async def result(self, max_wait: float | None = 600.0) -> Result:
        return await self._client.result(await self.wait(max_wait))

    async def events(self) -> AsyncIterator[Prediction]:
        async for prediction in self._client.events(self.id):
            self.prediction = prediction
            yield prediction
