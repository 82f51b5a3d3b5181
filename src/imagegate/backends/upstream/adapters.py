"""Which adapter speaks which provider's API."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from imagegate.backends.upstream.base import Adapter
from imagegate.backends.upstream.fal import FalAdapter
from imagegate.backends.upstream.openai import OpenAIAdapter
from imagegate.backends.upstream.replicate import ReplicateAdapter
from imagegate.backends.upstream.v3 import V3Adapter
from imagegate.domain.providers import UpstreamOptions

_ADAPTERS: dict[str, Callable[[UpstreamOptions, httpx.AsyncClient], Adapter]] = {
    "wavespeed": V3Adapter,
    "gptproto": V3Adapter,
    "imagegate": V3Adapter,
    "fal": FalAdapter,
    "replicate": ReplicateAdapter,
    "openai": OpenAIAdapter,
}


def adapter_for(options: UpstreamOptions, client: httpx.AsyncClient) -> Adapter:
    adapter = _ADAPTERS.get(options.provider)
    if adapter is None:
        raise NotImplementedError(f"no adapter for provider {options.provider!r} yet")
    return adapter(options, client)
