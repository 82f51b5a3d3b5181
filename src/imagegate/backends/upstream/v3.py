"""The v3 prediction API of WaveSpeedAI and GPTProto, which imagegate itself speaks: submit
to ``/api/v3/{model}/{task}``, read ``/api/v3/predictions/{id}/result``.

The contract's parameters pass through as they are. Every submit carries the job's
``Idempotency-Key``; another imagegate honours it, so a submit whose answer was lost can be
sent again and is answered with the job it made (``resend_lost_submits``).
"""

from __future__ import annotations

from typing import Any

import httpx

from imagegate.backends.upstream import http
from imagegate.backends.upstream.base import (
    Finished,
    HttpAdapter,
    Pending,
    Submitted,
    UpstreamError,
    UpstreamRequest,
)


class V3Adapter(HttpAdapter):
    def _headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def body(self, request: UpstreamRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "n": request.n,
            "aspect_ratio": request.aspect_ratio,
            "resolution": request.resolution,
            "seed": request.seed,
            "output_format": request.output_format,
        }
        if request.negative_prompt:
            body["negative_prompt"] = request.negative_prompt
        if request.references:
            body["images"] = [ref.data_uri() for ref in request.references]
        if request.webhook_url:
            body["webhook"] = request.webhook_url
        return body

    async def submit(self, key: str, request: UpstreamRequest) -> Submitted | Finished:
        response = await http.request(
            self.http,
            "POST",
            f"{self.base}/api/v3/{self.options.model_for(request.task)}/{request.task}",
            self.name,
            sent_job=True,
            timeout=self.options.submit_timeout,
            json=self.body(request),
            headers={**self._headers(key), "Idempotency-Key": request.client_ref},
        )
        data = _data(response, self.name)
        upstream_id = data.get("id")
        if not isinstance(upstream_id, str) or not upstream_id:
            raise UpstreamError("unknown", f"{self.name} answered the submit without a job id")
        return Submitted(upstream_id)

    async def poll(self, key: str, upstream_id: str) -> Pending | Finished:
        response = await http.request(
            self.http,
            "GET",
            f"{self.base}/api/v3/predictions/{upstream_id}/result",
            self.name,
            headers=self._headers(key),
        )
        data = _data(response, self.name)
        status = data.get("status")
        if status == "completed":
            outputs = [o for o in data.get("outputs") or [] if isinstance(o, str)]
            nsfw = [bool(flag) for flag in data.get("has_nsfw_contents") or []]
            return Finished(list(outputs), nsfw)
        if status == "failed":
            raise http.failed_job(self.name, data.get("error"))
        return Pending(http.retry_after(response))

    async def cancel(self, key: str, upstream_id: str) -> None:
        await http.request(
            self.http,
            "POST",
            f"{self.base}/api/v3/predictions/{upstream_id}/cancel",
            self.name,
            headers=self._headers(key),
        )


def _data(response: httpx.Response, provider: str) -> dict[str, Any]:
    data = http.json_object(response, provider).get("data")
    if not isinstance(data, dict):
        raise UpstreamError("transient", f"{provider} answered without a data object")
    return data
