"""What an upstream adapter is: submit a job to a provider, read where it stands.

Adapters are async and stateless: the key, the provider's job id and the job's request are
passed in, so that the worker can store each step durably between calls, and a restarted
worker can resume a job at the provider from what it stored.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Literal, Protocol

import httpx

from imagegate.domain.providers import UpstreamOptions

# What went wrong, which decides what the worker does next:
#   transient - the provider did not take the request (5xx, a refused connection): on a
#               submit the next target may take the job (failover); on a poll, the job
#               is still at the provider and is read again later;
#   failed    - the provider ran the job and failed it: the next target may take it;
#   rate      - 429: try again after Retry-After, then treat as transient;
#   unknown   - the submit was sent and its answer lost (a timeout, a 504/524): the
#               provider may have the job, so it is never sent blindly again;
#   key       - the key was refused (401/403, out of credit): take it out of the pool;
#   rejected  - the provider refused the request itself (400): no other target will do
#               better with the same request, so the job fails;
#   content   - the provider's content policy blocked the prompt or the output.
ErrorKind = Literal["transient", "failed", "rate", "unknown", "key", "rejected", "content"]


class UpstreamError(Exception):
    def __init__(self, kind: ErrorKind, message: str, *, retry_after_s: float | None = None):
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Reference:
    data: bytes
    content_type: str

    def data_uri(self) -> str:
        return f"data:{self.content_type};base64,{base64.b64encode(self.data).decode()}"


@dataclass(frozen=True)
class UpstreamRequest:
    """The contract's parameters of one job, as the provider gets them."""

    task: str
    prompt: str
    n: int
    width: int
    height: int
    aspect_ratio: str
    resolution: str
    seed: int
    output_format: str = "png"
    negative_prompt: str | None = None
    references: list[Reference] = field(default_factory=list)
    # Names this submit to the provider (the job id and its hop): sent as the
    # Idempotency-Key, or as the provider's own client reference where it has one.
    client_ref: str = ""
    # Where the provider may call when the job ends (set when imagegate has a public
    # address): it only wakes the waiting worker, which then reads the job as usual.
    webhook_url: str | None = None


@dataclass(frozen=True)
class Submitted:
    upstream_id: str


@dataclass(frozen=True)
class Pending:
    retry_after_s: float | None = None


@dataclass(frozen=True)
class Finished:
    """The job's images at the provider: URLs to download, ``data:`` URIs, or bytes."""

    outputs: list[str | bytes]
    nsfw: list[bool] = field(default_factory=list)


class HttpAdapter:
    """What every adapter holds: its target's options, the worker's shared HTTP client,
    the provider's base URL and name (for messages)."""

    def __init__(self, options: UpstreamOptions, client: httpx.AsyncClient) -> None:
        self.options = options
        self.http = client
        self.base = options.base_url.rstrip("/")
        self.name = options.provider


class Adapter(Protocol):
    def __init__(self, options: UpstreamOptions, http: httpx.AsyncClient) -> None: ...

    async def submit(self, key: str, request: UpstreamRequest) -> Submitted | Finished:
        """Start the job; a provider that answers at once (OpenAI) gives its images."""
        ...

    async def poll(self, key: str, upstream_id: str) -> Pending | Finished:
        """Where the job stands; raises ``UpstreamError`` when the provider failed it."""
        ...

    async def cancel(self, key: str, upstream_id: str) -> None:
        """Ask the provider to stop the job (best effort: errors are the caller's to log)."""
        ...
