"""The blob store port: original uploaded files, kept so a document can be re-indexed.

:class:`FileBlobStore` (the default) writes under ``knowledge.blob_dir`` as
``<team>/<key>``, atomically (write to a temporary name, then rename). Keys are ours
(collection and document ids), never user file names.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from pathlib import Path
from typing import Protocol

__all__ = ["BlobStore", "FileBlobStore"]

_SAFE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


class BlobStore(Protocol):
    async def put(self, team_id: str, key: str, data: bytes) -> None: ...

    async def get(self, team_id: str, key: str) -> bytes | None: ...

    async def delete(self, team_id: str, key: str) -> None: ...


class FileBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, team_id: str, key: str) -> Path:
        if not _SAFE.match(key) or ".." in key:
            raise ValueError(f"unsafe blob key {key!r}")
        team = hashlib.sha256(team_id.encode()).hexdigest()[:24]  # team ids are free text
        return self.root / team / key

    async def put(self, team_id: str, key: str, data: bytes) -> None:
        path = self._path(team_id, key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)

        await asyncio.to_thread(write)

    async def get(self, team_id: str, key: str) -> bytes | None:
        path = self._path(team_id, key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    async def delete(self, team_id: str, key: str) -> None:
        path = self._path(team_id, key)
        await asyncio.to_thread(path.unlink, True)
