"""OpenAI's Images API for the GPT image models as its reference describes it: ``POST
/v1/images/generations`` (JSON) and ``POST /v1/images/edits`` (multipart, ``image[]``
parts) answer at once with ``data[].b64_json``. Like OpenAI it refuses a parameter it does
not know, a size the models do not make, and an ``n`` outside 1-10; errors are
``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

import base64
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.upstream.provider_servers.base import ProviderServer

SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")
PARAMETERS = frozenset(
    {
        "model", "prompt", "n", "size", "quality", "background", "moderation",
        "output_format", "output_compression", "partial_images", "stream", "user",
        "input_fidelity", "mask",
    }
)  # fmt: skip


def _error(
    status: int, message: str, kind: str, code: str | None, headers: dict[str, str] | None = None
) -> Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


class OpenAIServer(ProviderServer):
    def routes(self) -> list[Route]:
        return [
            Route("/v1/images/generations", self.generate, methods=["POST"]),
            Route("/v1/images/edits", self.generate, methods=["POST"]),
        ]

    def _refused(self, request: Request) -> Response | None:
        key = self.key_of(request, "Bearer")
        if key is None or key in self.faults.bad_keys:
            message = "Incorrect API key provided. You can find your API key at platform."
            return _error(401, message, "invalid_request_error", "invalid_api_key")
        if key in self.faults.broke_keys:
            # Out of credit is a 429, like a rate limit: only the code tells them apart.
            message = "You exceeded your current quota, please check your plan and billing details."
            return _error(429, message, "insufficient_quota", "insufficient_quota")
        if self.faults.submit_status == 429:
            message = "Rate limit reached for gpt-image-1 on images per minute. Try again in 7s."
            headers = {"Retry-After": self.faults.retry_after} if self.faults.retry_after else None
            return _error(429, message, "requests", "rate_limit_exceeded", headers)
        if self.faults.submit_status is not None:
            message = "The server had an error while processing your request. Sorry about that!"
            return _error(self.faults.submit_status, message, "server_error", None)
        return None

    def _invalid(self, fields: dict[str, Any]) -> Response | None:
        unknown = sorted(set(fields) - PARAMETERS)
        if unknown:
            message = f"Unknown parameter: '{unknown[0]}'."
            return _error(400, message, "invalid_request_error", "unknown_parameter")
        if str(fields.get("size", "auto")) not in SIZES:
            message = f"Invalid value: '{fields['size']}'. Supported values are: {SIZES}."
            return _error(400, message, "invalid_request_error", "invalid_value")
        if not 1 <= int(fields.get("n", 1)) <= 10:
            return _error(400, "n must be between 1 and 10", "invalid_request_error", None)
        return None

    async def generate(self, request: Request) -> Response:
        received = await self.record(request)
        if (refused := self._refused(request)) is not None:
            return refused
        edits = request.url.path.endswith("/edits")
        form = {name: values[0] for name, values in received.form.items()}
        fields: dict[str, Any] = form if edits else dict(received.json)
        if edits and not received.files:
            return _error(
                400, "Missing required parameter: 'image'.", "invalid_request_error", None
            )
        if (invalid := self._invalid(fields)) is not None:
            return invalid
        if self.faults.block_content:
            message = (
                "Your request was rejected as a result of our safety system. Your request may "
                "contain content that is not allowed by our safety system."
            )
            return _error(400, message, "image_generation_user_error", "moderation_blocked")
        if self.faults.job_error is not None:
            return _error(self.faults.job_error_status, self.faults.job_error, "server_error", None)
        job = self.new_job(int(fields.get("n", 1)))
        images = [self.png(f"{job.id}-{index}.png", index) for index in range(job.n)]
        body = {
            "created": 1713833628,
            "data": [{"b64_json": base64.b64encode(image).decode()} for image in images],
            "size": fields.get("size", "auto"),
            "output_format": fields.get("output_format", "png"),
            "usage": {"total_tokens": 100, "input_tokens": 50, "output_tokens": 50},
        }
        return JSONResponse(body)
