"""Constrained types for settings (:mod:`linqra.config`): a readable file, a web origin.

Kept apart so ``linqra/config.py`` stays a list of settings; pydantic reports each failure under
the key's own path (``http.tls_certfile``, ``http.cors_origins.0``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["ReadableFile", "WebOrigin"]

_ORIGIN = re.compile(r"https?://[a-z0-9.-]+(:\d{1,5})?", re.IGNORECASE)


def _readable_file(path: Path) -> Path:
    """Made absolute, so the settings still name it in a Ray worker started elsewhere."""
    path = path.expanduser().absolute()
    if not (path.is_file() and os.access(path, os.R_OK)):
        raise ValueError(f"{path} is not a readable file")
    return path


def _web_origin(origin: str) -> str:
    if not _ORIGIN.fullmatch(origin):
        raise ValueError(
            f"{origin[:100]!r} is not a web origin: scheme://host[:port], no path "
            "('*' is not accepted: name each one)"
        )
    return origin.lower()


ReadableFile = Annotated[Path, AfterValidator(_readable_file)]
WebOrigin = Annotated[str, AfterValidator(_web_origin)]
