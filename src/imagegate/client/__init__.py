"""imagegate's Python SDK: ``Client`` and ``AsyncClient`` for imagegate and for any server
of the v3 prediction API (GPTProto, WaveSpeedAI). Needs only httpx and pydantic.

    from imagegate.client import Client

    with Client("http://127.0.0.1:8000", api_key="ig_...") as client:
        result = client.run("kwaivgi/kling-image-o1", prompt="a red circle", aspect_ratio="1:1")
        result.images[0].save("circle.png")
"""

# isort: off
from imagegate.client import _lean_httpx  # noqa: F401  (before anything imports httpx)

# isort: on
from imagegate.client._client import AsyncClient, Client
from imagegate.client._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ContentPolicyError,
    ImagegateClientError,
    InsufficientBalanceError,
    NotFoundError,
    OutputBlockedError,
    PermissionDeniedError,
    PredictionFailedError,
    RateLimitError,
    RequestTooLargeError,
    ServerError,
)
from imagegate.client._handles import AsyncHandle, Handle
from imagegate.client._operations import Image, Result
from imagegate.wire import ModelInfo, Prediction

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncHandle",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ContentPolicyError",
    "Handle",
    "Image",
    "ImagegateClientError",
    "InsufficientBalanceError",
    "ModelInfo",
    "NotFoundError",
    "OutputBlockedError",
    "PermissionDeniedError",
    "Prediction",
    "PredictionFailedError",
    "RateLimitError",
    "RequestTooLargeError",
    "Result",
    "ServerError",
]
