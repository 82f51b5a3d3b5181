"""fal's queue API: submit to ``{base}/{model}``, read
``{base}/{owner}/{app}/requests/{id}/status`` until it says ``COMPLETED``, then the result
at ``{base}/{owner}/{app}/requests/{id}``.

fal's image models take their own inputs; the adapter sends the names they share
(``prompt``, ``image_size``, ``num_images``, ``seed``, ``negative_prompt``,
``image_urls``), and fal's models ignore the ones they do not declare.
"""

from __future__ import annotations

from typing import Any

import httpx

from imagegate.backends.upstream import http
from imagegate.backends.upstream.base import (
    ErrorKind,
    Finished,
    HttpAdapter,
    Pending,
    Submitted,
    UpstreamError,
    UpstreamRequest,
)
from imagegate.domain.providers import UpstreamOptions

# fal's model errors carry a machine-readable type; its content checker's is this one
# (a 422 whose message may not name the policy).
_CODES: dict[str, ErrorKind] = {"content_policy_violation": "content"}
# App namespaces that come before owner/app in a model id (fal_client's APP_NAMESPACES).
_NAMESPACES = frozenset({"workflows", "comfy"})
# Besides IN_QUEUE, IN_PROGRESS and COMPLETED, the ends some of fal's answers spell out.
_ENDED = frozenset({"FAILED", "CANCELED", "CANCELLED"})


def requests_path(model: str) -> str:
    """Where a model's requests live: a model id may name an endpoint under its app
    (``fal-ai/flux/dev``), but status, result and cancel take only the app
    (``fal-ai/flux``), as fal's own client builds them."""
    parts = model.strip("/").split("/")
    keep = 3 if parts[0] in _NAMESPACES else 2
    return "/".join(parts[:keep]) + "/requests"


class FalAdapter(HttpAdapter):
    def __init__(self, options: UpstreamOptions, client: httpx.AsyncClient) -> None:
        super().__init__(options, client)
        self.requests = f"{self.base}/{requests_path(options.upstream_model)}"

    def _headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Key {key}"}

    def body(self, request: UpstreamRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "image_size": {"width": request.width, "height": request.height},
            "num_images": request.n,
            "seed": request.seed,
            # fal's models write jpeg or png; webp comes back as png, which the worker
            # encodes as the job asked.
            "output_format": "jpeg" if request.output_format == "jpeg" else "png",
        }
        if request.negative_prompt:
            body["negative_prompt"] = request.negative_prompt
        if request.references:
            body["image_urls"] = [ref.data_uri() for ref in request.references]
        return body

    async def submit(self, key: str, request: UpstreamRequest) -> Submitted | Finished:
        response = await http.request(
            self.http,
            "POST",
            f"{self.base}/{self.options.model_for(request.task).strip('/')}",
            self.name,
            sent_job=True,
            timeout=self.options.submit_timeout,
            codes=_CODES,
            json=self.body(request),
            params={"fal_webhook": request.webhook_url} if request.webhook_url else None,
            headers=self._headers(key),
        )
        request_id = http.json_object(response, self.name).get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise UpstreamError("unknown", f"{self.name} answered the submit without a request_id")
        return Submitted(request_id)

    async def poll(self, key: str, upstream_id: str) -> Pending | Finished:
        response = await http.request(
            self.http,
            "GET",
            f"{self.requests}/{upstream_id}/status",
            self.name,
            codes=_CODES,
            headers=self._headers(key),
        )
        status = http.json_object(response, self.name)
        state = status.get("status")
        if status.get("error"):
            raise http.failed_job(self.name, status["error"])
        if state == "COMPLETED":
            return await self._result(key, upstream_id)
        if state in _ENDED:
            raise http.failed_job(self.name, f"the request ended {state}")
        return Pending(http.retry_after(response))

    async def _result(self, key: str, upstream_id: str) -> Finished:
        try:
            response = await http.request(
                self.http,
                "GET",
                f"{self.requests}/{upstream_id}",
                self.name,
                codes=_CODES,
                headers=self._headers(key),
            )
        except UpstreamError as exc:
            if exc.kind not in ("rejected", "transient") or isinstance(
                exc.__cause__, httpx.TransportError
            ):
                raise
            # The status said COMPLETED and the result is an error status: the model failed
            # the request (fal answers its error as the result), so the job failed there,
            # and another target may still make it. A dropped connection is only a read.
            raise http.failed_job(self.name, exc.message) from exc
        result = http.json_object(response, self.name)
        images = result.get("images") or []
        outputs: list[str | bytes] = [
            image["url"]
            for image in images
            if isinstance(image, dict) and isinstance(image.get("url"), str)
        ]
        if not outputs:
            raise http.failed_job(self.name, "the result has no images")
        nsfw = [bool(flag) for flag in result.get("has_nsfw_concepts") or []]
        return Finished(outputs, nsfw)

    async def cancel(self, key: str, upstream_id: str) -> None:
        await http.request(
            self.http,
            "PUT",
            f"{self.requests}/{upstream_id}/cancel",
            self.name,
            headers=self._headers(key),
        )
