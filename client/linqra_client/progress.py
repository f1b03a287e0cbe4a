"""Progress of an upload: the bytes sent, then the chunks the cluster has embedded."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ProgressReader", "UploadProgress"]


@dataclass(frozen=True)
class UploadProgress:
    """``phase`` ``"upload"``: ``done`` of ``total`` bytes sent; ``"ingest"``: ``done`` of
    ``total`` chunks embedded (``total`` is 0 until the document is split), with the
    ``document`` as last read (its ``status`` ends READY or FAILED)."""

    file_name: str
    phase: Literal["upload", "ingest"]
    done: int
    total: int
    document: Any = None


class ProgressReader(io.RawIOBase):
    """A file over ``data`` that reports how many bytes were read (httpx reads a multipart
    file in chunks, so each chunk sent is one report)."""

    def __init__(self, data: bytes, report: Callable[[int], None]) -> None:
        super().__init__()
        self._data = memoryview(data)
        self._at = 0
        self._report = report

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._at, io.SEEK_END: len(self._data)}[whence]
        self._at = max(0, min(len(self._data), base + offset))
        return self._at

    def tell(self) -> int:
        return self._at

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size is None or size < 0 else min(len(self._data), self._at + size)
        chunk = bytes(self._data[self._at : end])
        self._at = end
        if chunk:
            self._report(self._at)
        return chunk

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)
