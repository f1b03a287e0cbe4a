"""Reading server-sent events in tests: ``(id, event, data)`` of each event of a stream's lines
(comments and keep-alives skipped, ``data`` parsed as JSON)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

__all__ = ["Event", "sse"]

Event = tuple[str, str, dict[str, Any]]


def sse(lines: Iterator[str]) -> Iterator[Event]:
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if "event" in fields:
                yield fields.get("id", ""), fields["event"], json.loads(fields.get("data", "{}"))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
