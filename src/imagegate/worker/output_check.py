"""Which output image check the worker runs (``IMAGEGATE_IMAGE_CHECKER``), built once, on
first use, in a thread, and run in a thread so the event loop never waits on it."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Sequence
from typing import Any

import anyio
from PIL import Image

log = logging.getLogger("imagegate.worker")

SHIPPED = {"nudenet": "imagegate.backends.safety:NudeNetChecker"}


def checker_path(setting: str) -> str | None:
    """The ``module:Class`` to build for a setting, or None for no check."""
    if setting == "none":
        return None
    if setting == "auto":
        if importlib.util.find_spec("nudenet") is None:
            return None
        return SHIPPED["nudenet"]
    return SHIPPED.get(setting, setting)


class OutputCheck:
    def __init__(self, setting: str) -> None:
        self.path = checker_path(setting)
        if self.path is None:
            log.warning(
                "outputs are not checked for nudity (has_nsfw_contents is always false): "
                'pip install "imagegate[safety]" to check them with NudeNet'
                if setting == "auto"
                else "outputs are not checked (IMAGEGATE_IMAGE_CHECKER=none)"
            )
        self._checker: Any = None
        self._lock = anyio.Lock()

    async def _load(self) -> Any:
        async with self._lock:
            if self._checker is None and self.path is not None:
                module_name, _, class_name = self.path.partition(":")

                def build() -> Any:
                    return getattr(importlib.import_module(module_name), class_name)()

                self._checker = await anyio.to_thread.run_sync(build)
                log.info("output image check loaded: %s", self.path)
            return self._checker

    async def flags(self, images: Sequence[Image.Image]) -> list[bool]:
        if self.path is None:
            return [False] * len(images)
        checker = await self._load()
        flags: list[bool] = await anyio.to_thread.run_sync(checker.check, images)
        if len(flags) != len(images):
            raise RuntimeError(f"the image check answered {len(flags)} flags for {len(images)}")
        return [bool(f) for f in flags]
