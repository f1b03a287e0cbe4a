"""The blob store port: original uploaded files, kept so a document can be re-indexed.

:class:`FileBlobStore` (the default) writes under ``knowledge.blob_dir`` as
``<hash of team>/<key>``, atomically (write to a temporary file of its own, then rename). Keys are
ours (collection and document ids), never user file names.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

__all__ = ["BlobStore", "FileBlobStore", "check_key", "check_team"]

_SAFE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


class BlobStore(Protocol):
    """Bytes by team and key.

    Every call takes the team and refuses an empty one (``ValueError``). A team reads and deletes
    only its own blobs: the same key of two teams is two blobs.

    Keys are ours, never user text: ``/``-separated segments of letters, digits, ``_``, ``.`` and
    ``-``. A key that could leave its team's space (``..``, a segment of dots, an absolute path,
    an empty segment) is refused with ``ValueError``.

    A put replaces the key's bytes atomically: a reader sees the old bytes or the new ones, never
    a mix, also while several writers put the same key at once (the last to finish wins).
    """

    async def put(self, team_id: str, key: str, data: bytes) -> None:
        """Store ``data`` (any bytes, empty included) under ``key``, replacing what it held."""

    async def get(self, team_id: str, key: str) -> bytes | None:
        """The bytes under ``key``, or ``None`` when the team has no such blob."""

    async def delete(self, team_id: str, key: str) -> None:
        """Remove the blob; deleting a missing one is a no-op."""


def check_team(team_id: str) -> str:
    if not isinstance(team_id, str) or not team_id:
        raise ValueError("the blob store refuses an unscoped call: team_id is required")
    return team_id


def check_key(key: str) -> str:
    if (
        not isinstance(key, str)
        or not _SAFE.match(key)
        or any(set(segment) == {"."} for segment in key.split("/"))
    ):
        raise ValueError(f"unsafe blob key {key!r}")
    return key


class FileBlobStore:
    """Blobs as files under ``root``, one directory per team."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, team_id: str, key: str) -> Path:
        check_key(key)
        team = hashlib.sha256(check_team(team_id).encode()).hexdigest()[:24]  # ids are free text
        return self.root / team / key

    async def put(self, team_id: str, key: str, data: bytes) -> None:
        path = self._path(team_id, key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # a temporary file of this write alone: concurrent puts of one key never share it
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

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
