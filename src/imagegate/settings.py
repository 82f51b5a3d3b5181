"""The one configuration object, read from ``IMAGEGATE_*`` environment variables.

Nothing builds a ``Settings`` at import time: the entry point (``imagegate serve`` or a test)
constructs it and passes it down, so two apps with different settings can share a process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from limits import parse
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMAGEGATE_", extra="ignore")

    data_dir: Path = Field(default=Path("./imagegate-data"), description="SQLite file, outputs")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; default SQLite under data_dir"
    )
    models: Path | None = Field(default=None, description="model registry TOML; default ships")
    image_checker: str = Field(
        default="auto",
        description="output image check: auto (NudeNet when installed), nudenet, none, "
        "or a 'package.module:Class' with check(images) -> list[bool]",
    )
    prompt_policy: Path | None = Field(
        default=None, description="prompt policy TOML (words, patterns); default ships"
    )
    public_base_url: str | None = Field(
        default=None, description="base URL clients use, e.g. https://img.example.com"
    )
    trust_forwarded_headers: bool = Field(
        default=True, description="build absolute URLs from X-Forwarded-Proto/Host"
    )
    secret_key: str | None = Field(
        default=None, description="signs file URLs; default: generated once under data_dir"
    )

    admin_key: str | None = Field(
        default=None,
        description="the admin API's key (/admin/v1); unset: the admin API is off",
        min_length=16,
    )
    auth_cache_s: float = Field(
        default=5.0, ge=0, description="how long a key lookup is reused; bounds revoke delay"
    )

    max_prompt_length: int = Field(default=4000, ge=1)
    max_request_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    allow_private_urls: bool = False
    fetch_timeout_s: float = Field(default=10.0, gt=0)

    sync_mode_timeout: float = Field(default=60.0, ge=0)
    max_wait_s: float = Field(default=60.0, ge=0, description="cap on ?wait= long-poll reads")
    file_url_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)

    run_worker: bool = Field(default=True, description="run the in-process worker in serve")
    worker_isolation: Literal["process", "thread"] = Field(
        default="process",
        description="run models in a separate process (a crash fails only the job) or a thread",
    )
    worker_concurrency: int = Field(
        default=2,
        ge=1,
        le=256,
        description="jobs one worker holds at once: the model runs one batch at a time "
        "while the others are encoded, stored or gathered into the next batch",
    )
    upstream_concurrency: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="upstream jobs one worker waits on at once (each provider key has its "
        "own cap too); waiting holds no model slot",
    )
    batch_window_ms: float = Field(
        default=20.0,
        ge=0,
        le=10_000,
        description="under concurrent load, how long a batch waits for compatible jobs",
    )
    model_memory_gb: float | None = Field(
        default=None,
        gt=0,
        description="memory the loaded models may hold; least recently used ones are "
        "unloaded past it (unset: no limit)",
    )
    model_memory_reuse: bool = Field(
        default=True,
        description="in the model process, on Linux: keep memory that one model step freed "
        "for the next instead of handing it back to the system (CPU models run much faster; "
        "the process keeps what its largest batch needed until a model is unloaded)",
    )
    progress_interval_s: float = Field(
        default=0.5, gt=0, description="how often a running job's step is written"
    )
    lease_s: float = Field(
        default=30.0, gt=0, description="a claim lapses this long after its last heartbeat"
    )
    shutdown_grace_s: float = Field(default=10.0, ge=0, description="wait for running jobs on stop")
    poll_interval_s: float = Field(default=0.5, gt=0)
    redis_url: str | None = Field(
        default=None,
        description="share rate limits between server processes through this Redis "
        "(redis://host:6379/0); unset: each process counts in its own memory",
    )
    submit_rate_limit: str | None = Field(
        default=None,
        description="submits per window for a key that sets no limit of its own, "
        "e.g. 60/minute (unset: none)",
    )
    read_rate_limit: str | None = Field(
        default="1200/minute",
        description="result reads, lists and cancels per window per key (unset: none)",
    )

    @field_validator("submit_rate_limit", "read_rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value:
            parse(value)  # limits' own ValueError, which pydantic reports
        return value or None

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'imagegate.db').resolve()}"

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "files"
