"""Pydantic models of the JSON contract, shared by the server and the SDK.

Only pydantic and the standard library here: the SDK imports this module without the
server's extras.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, RootModel

T = TypeVar("T")

AspectRatio = Literal["16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "2:1", "auto"]
Resolution = Literal["1k", "2k"]
OutputFormat = Literal["png", "jpeg", "webp"]
Status = Literal["created", "processing", "completed", "failed"]

MAX_SEED = 2**32 - 1


def _no_strings_or_bools(value: Any) -> Any:
    if isinstance(value, (str, bool)):
        raise ValueError("must be an integer")
    return value


# JSON has one number type: 3.0 from a Python client is the integer 3 (JSON Schema agrees),
# but "3" and true are still refused.
JsonInt = Annotated[int, Field(strict=False), BeforeValidator(_no_strings_or_bools)]
MAX_IMAGES = 10
MAX_N = 9


class GenerationRequest(BaseModel):
    """The submit body (SPEC §1). Unknown fields are ignored; wrong types are refused, so
    ``"n": "3"`` is a 400 rather than a silent conversion."""

    model_config = ConfigDict(strict=True, extra="ignore")

    prompt: Annotated[str, Field(min_length=1, description="what to draw; not blank")]
    aspect_ratio: AspectRatio = "16:9"
    n: Annotated[JsonInt, Field(ge=1, le=MAX_N)] = 1
    resolution: Resolution = "1k"
    images: Annotated[
        list[str] | None,
        Field(max_length=MAX_IMAGES, description="reference images: URLs or data URIs"),
    ] = None
    seed: Annotated[JsonInt | None, Field(ge=0, le=MAX_SEED)] = None
    negative_prompt: str | None = None
    enable_sync_mode: bool = False
    enable_base64_output: bool = False
    output_format: OutputFormat = "png"
    webhook: str | None = None


class PredictionUrls(BaseModel):
    get: str


class Timings(BaseModel):
    inference: int = 0


class JobProgress(BaseModel):
    """imagegate's extension: the model's step while the job runs."""

    step: int
    total: int


class Prediction(BaseModel):
    id: str
    model: str
    outputs: list[str]
    urls: PredictionUrls
    status: Status
    error: str | None
    executionTime: int
    timings: Timings
    has_nsfw_contents: list[bool]
    created_at: str
    # imagegate's extensions, which clients of the reference API ignore: the seed the job
    # ran with (image i used seed + i), and the model's progress while it runs. Optional
    # so that the SDK reads the hosted APIs' predictions, which have no seed.
    seed: int | None = None
    progress: JobProgress | None = None


class PredictionPage(BaseModel):
    page: int
    page_size: int
    total: int
    items: list[Prediction]


class ListQuery(BaseModel):
    """Filters of the prediction list; the POST form takes the same fields as JSON."""

    model_config = ConfigDict(extra="ignore")

    # Bounded so that (page - 1) * page_size always fits the databases' 64-bit OFFSET.
    page: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    page_size: Annotated[int, Field(ge=1, le=100)] = 20
    status: Status | None = None
    model: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class UploadResult(BaseModel):
    type: str = "image"
    filename: str
    size: int
    download_url: str


class UploadTicketRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    filename: Annotated[str, Field(min_length=1, max_length=255)]
    size: Annotated[int, Field(ge=1)]
    content_type: Annotated[str, Field(min_length=1, max_length=127)]


class UploadTarget(BaseModel):
    method: Literal["PUT"] = "PUT"
    url: str
    headers: dict[str, str]


class UploadTicket(BaseModel):
    upload: UploadTarget
    download_url: str


class ModelInfo(BaseModel):
    route: str
    tasks: list[str]
    backend: str
    parameters: dict[str, Any]
    price: str = Field(description="dollars per image at 1k, exact decimal text")
    price_2k: str = Field(description="dollars per image at 2k, exact decimal text")


class Health(BaseModel):
    status: str


class Envelope(BaseModel, Generic[T]):
    code: int = 200
    message: str = "success"
    data: T


class ErrorEnvelope(BaseModel):
    code: int
    message: str
    data: dict[str, Any] | None = None


class ModelList(RootModel[list[ModelInfo]]):
    pass
