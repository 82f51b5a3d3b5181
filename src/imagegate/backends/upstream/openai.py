"""OpenAI's Images API for the GPT image models: ``{base}/v1/images/generations`` (JSON),
or ``{base}/v1/images/edits`` (multipart, one ``image[]`` part a reference) when the job
has references.

The API answers with the images themselves (base64) in the submit's own answer, so the
submit returns ``Finished`` and there is no job at OpenAI to poll or cancel. It takes no
seed and no negative prompt (``CAPABILITIES`` refuses those at submit), and it makes
three sizes, so the adapter asks for the one nearest the contract's shape and the worker
resizes.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

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

SIZES: tuple[tuple[int, int], ...] = ((1024, 1024), (1536, 1024), (1024, 1536))
# OpenAI's error codes where the status misleads: an account out of credit answers 429
# (insufficient_quota), like a rate limit; the safety system's refusals are 400s.
_CODES: dict[str, ErrorKind] = {
    "insufficient_quota": "key",
    "billing_hard_limit_reached": "key",
    "invalid_api_key": "key",
    "content_policy_violation": "content",
    "moderation_blocked": "content",
}


def size_for(width: int, height: int) -> str:
    """The supported size nearest in shape to ``width`` x ``height`` (on a log scale, so
    that 3:2 and 2:3 are equally far from square)."""
    target = math.log(width / height)
    w, h = min(SIZES, key=lambda size: abs(math.log(size[0] / size[1]) - target))
    return f"{w}x{h}"


class OpenAIAdapter(HttpAdapter):
    def fields(self, request: UpstreamRequest) -> dict[str, Any]:
        return {
            "model": self.options.model_for(request.task),
            "prompt": request.prompt,
            "n": request.n,
            "size": size_for(request.width, request.height),
            "output_format": request.output_format,
        }

    async def submit(self, key: str, request: UpstreamRequest) -> Submitted | Finished:
        content: dict[str, Any]
        if request.references:
            files = [
                ("image[]", (f"reference-{index}", ref.data, ref.content_type))
                for index, ref in enumerate(request.references)
            ]
            form = {name: str(value) for name, value in self.fields(request).items()}
            path, content = "edits", {"data": form, "files": files}
        else:
            path, content = "generations", {"json": self.fields(request)}
        response = await http.request(
            self.http,
            "POST",
            f"{self.base}/v1/images/{path}",
            self.name,
            sent_job=True,
            timeout=self.options.submit_timeout,
            codes=_CODES,
            headers={"Authorization": f"Bearer {key}"},
            **content,
        )
        return _finished(http.json_object(response, self.name), self.name)

    async def poll(self, key: str, upstream_id: str) -> Pending | Finished:
        # submit never answers Submitted, so a poll means the caller lost track.
        raise UpstreamError("failed", f"{self.name} has no job to poll ({upstream_id})")

    async def cancel(self, key: str, upstream_id: str) -> None:
        """Nothing to cancel: the images came with the submit's answer."""


def _finished(body: dict[str, Any], provider: str) -> Finished:
    outputs: list[str | bytes] = []
    for item in body.get("data") or []:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("b64_json"), str):
            try:
                outputs.append(base64.b64decode(item["b64_json"], validate=True))
            except binascii.Error as exc:
                raise http.failed_job(provider, "an image was not valid base64") from exc
        elif isinstance(item.get("url"), str):
            outputs.append(item["url"])
    if not outputs:
        raise http.failed_job(provider, "the answer has no images")
    return Finished(outputs)
