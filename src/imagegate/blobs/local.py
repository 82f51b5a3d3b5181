"""Blobs as files under a directory, written atomically (temp file + rename)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import anyio

_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$")


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path_for(self, key: str) -> Path:
        # Keys come from the server, but a signed URL still carries one: refuse anything
        # that could climb out of the root.
        if not _SAFE_KEY.match(key) or ".." in key.split("/"):
            raise KeyError(key)
        return self.root / key

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    async def put(self, key: str, data: bytes) -> None:
        await anyio.to_thread.run_sync(self._write, self.path_for(key), data)

    async def get(self, key: str) -> bytes:
        path = self.path_for(key)
        try:
            return await anyio.Path(path).read_bytes()
        except FileNotFoundError as exc:
            raise KeyError(key) from exc

    async def exists(self, key: str) -> bool:
        try:
            return await anyio.Path(self.path_for(key)).is_file()
        except KeyError:
            return False

    async def delete(self, key: str) -> None:
        try:
            await anyio.Path(self.path_for(key)).unlink(missing_ok=True)
        except KeyError:
            return
