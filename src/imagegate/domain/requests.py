"""A submit body turned into validated job parameters, with defaults and limits applied."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from imagegate.errors import BadRequestError
from imagegate.wire import MAX_SEED, GenerationRequest


@dataclass(frozen=True)
class JobParams:
    prompt: str
    n: int
    aspect_ratio: str
    resolution: str
    seed: int
    width: int
    height: int
    output_format: str = "png"
    base64_output: bool = False
    negative_prompt: str | None = None
    images: tuple[str, ...] = field(default_factory=tuple)
    webhook: str | None = None
    # Whether the client chose the seed (a provider without seeds can only refuse that).
    seed_given: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["images"] = list(self.images)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobParams:
        return cls(**{**data, "images": tuple(data.get("images") or ())})


def check_prompt(request: GenerationRequest, max_prompt_length: int) -> None:
    if not request.prompt.strip():
        raise BadRequestError("prompt: must not be blank")
    if len(request.prompt) > max_prompt_length:
        raise BadRequestError(
            f"prompt: at most {max_prompt_length} characters (got {len(request.prompt)})"
        )


def check_webhook(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequestError("webhook: must be an http or https URL")


def resolve_seed(seed: int | None) -> int:
    return secrets.randbelow(MAX_SEED + 1) if seed is None else seed


def build_params(request: GenerationRequest, *, seed: int, size: tuple[int, int]) -> JobParams:
    return JobParams(
        prompt=request.prompt,
        n=request.n,
        aspect_ratio=request.aspect_ratio,
        resolution=request.resolution,
        seed=seed,
        width=size[0],
        height=size[1],
        output_format=request.output_format,
        base64_output=request.enable_base64_output,
        negative_prompt=request.negative_prompt,
        images=tuple(request.images or ()),
        webhook=request.webhook,
        seed_given=request.seed is not None,
    )
