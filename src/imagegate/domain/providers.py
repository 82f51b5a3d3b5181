"""Upstream providers: what a ``backend = "upstream"`` target may say, and what each
provider's API can do with the contract's parameters.

Pure rules, no I/O: the submit path asks ``unsupported`` before it charges, so a request a
provider cannot serve is a 400 that names the provider and the parameter, never a job that
fails later at the provider (after the provider may already have billed for it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from imagegate.domain.pricing import AmountError, DollarField, parse_usd
from imagegate.domain.requests import JobParams

Provider = Literal["wavespeed", "gptproto", "imagegate", "fal", "replicate", "openai"]


@dataclass(frozen=True)
class Capabilities:
    max_n: int
    max_references: int  # reference images a request can carry (0: none)
    seed: bool
    negative_prompt: bool
    # Whether the provider recognises a repeated submit (an Idempotency-Key or a client
    # reference it can be searched by): only then can a submit whose answer was lost be
    # sent again safely, since the provider answers it with the job it already made.
    finds_lost_submits: bool


# The v3 API (WaveSpeed, GPTProto) takes the contract's parameters as they are; another
# imagegate does too, and it also honours Idempotency-Key. fal and Replicate pass the
# model's own inputs through (the adapters map the contract's names onto the common ones).
# Replicate's common image models take one input image. OpenAI's Images API has no seed
# and no negative prompt, makes at most 10 images and edits from up to 16.
CAPABILITIES: dict[str, Capabilities] = {
    "wavespeed": Capabilities(9, 10, True, True, False),
    "gptproto": Capabilities(9, 10, True, True, False),
    "imagegate": Capabilities(9, 10, True, True, True),
    "fal": Capabilities(4, 10, True, True, False),
    "replicate": Capabilities(4, 1, True, True, False),
    "openai": Capabilities(10, 16, False, False, False),
}


class UpstreamOptions(BaseModel):
    """One upstream target of a route. Keys never live in the registry file: it names the
    environment variable that holds them (comma-separated)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Provider
    base_url: str = Field(pattern=r"^https?://")
    api_keys_env: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    upstream_model: str = Field(min_length=1)
    # Another model id for a task, where the provider serves it apart (fal's and
    # Replicate's image-to-image models): {"image-to-image" = "fal-ai/flux/dev/image-to-image"}.
    task_models: dict[str, str] = Field(default_factory=dict)
    max_concurrent_per_key: int = Field(default=3, ge=1, le=1000)
    # What the provider charges per image (dollars), for the margin report.
    cost: DollarField = 0
    # Send a submit again after its answer was lost (a timeout, a 504) only when the
    # provider is known to recognise the repeat; unset: the provider's known behaviour.
    resend_lost_submits: bool | None = None
    # Unset: 60 s, or 240 s for OpenAI, whose images come in the submit's own answer (a
    # submit that times out is a lost answer, which fails the job rather than resend it).
    submit_timeout_s: float | None = Field(default=None, gt=0)
    # How long a job may run at the provider before we stop waiting for it.
    max_wait_s: float = Field(default=1800.0, gt=0)
    poll_interval_s: float = Field(default=1.0, gt=0)
    max_poll_interval_s: float = Field(default=10.0, gt=0)
    # The circuit breaker: after this many failures in a row the target gets no new jobs
    # for ``circuit_cooldown_s``; then one job is let through to try it.
    circuit_failures: int = Field(default=5, ge=1)
    circuit_cooldown_s: float = Field(default=30.0, gt=0)

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES[self.provider]

    def model_for(self, task: str) -> str:
        return self.task_models.get(task, self.upstream_model)

    @property
    def submit_timeout(self) -> float:
        if self.submit_timeout_s is not None:
            return self.submit_timeout_s
        return 240.0 if self.provider == "openai" else 60.0

    @property
    def finds_lost_submits(self) -> bool:
        if self.resend_lost_submits is not None:
            return self.resend_lost_submits
        return self.capabilities.finds_lost_submits

    @property
    def cost_micros(self) -> int:
        return parse_usd(self.cost)


def check_cost(options: UpstreamOptions) -> str | None:
    try:
        options.cost_micros  # noqa: B018 - parsed for its error
    except AmountError as exc:
        return f"cost: {exc}"
    return None


def unsupported(provider: str, params: JobParams) -> str | None:
    """Why ``provider`` cannot serve ``params``, or None when it can."""
    caps = CAPABILITIES[provider]
    if params.n > caps.max_n:
        return f"n: {provider} makes at most {caps.max_n} images a request"
    if len(params.images) > caps.max_references:
        if caps.max_references == 0:
            return f"images: {provider} takes no reference images"
        return f"images: {provider} takes at most {caps.max_references} reference image(s)"
    if params.seed_given and not caps.seed:
        return f"seed: {provider} takes no seed, so it cannot repeat an image"
    if params.negative_prompt and not caps.negative_prompt:
        return f"negative_prompt: {provider} takes no negative prompt"
    return None
