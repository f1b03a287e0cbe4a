"""The WebSocket clients of ``websockets``: the asyncio one for ``_async``, the threaded one for
the generated ``_sync`` (``aconnect_ws`` becomes ``connect_ws``)."""

from __future__ import annotations

from websockets.asyncio.client import connect as aconnect_ws
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as connect_ws

__all__ = ["aconnect_ws", "closed_errors", "connect_ws"]

closed_errors = (ConnectionClosed, OSError)
