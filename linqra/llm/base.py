"""The model port and the provider port (as in pydantic-ai: wire format apart from credentials).

A :class:`Model` speaks one wire format and answers ``request`` (one response) and
``request_stream`` (``Delta`` events, then the final :class:`ModelResponse` with the usage the
provider reported). A :class:`Provider` owns credentials, base URL and the SDK client, and hands
out models by name. Resilience and accounting wrap a model; adapters stay plain.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from linqra.llm.types import Delta, Message, ModelResponse, ModelSettings, ToolCallDelta

__all__ = ["Model", "Provider", "StreamEvent"]

StreamEvent = Delta | ToolCallDelta | ModelResponse


class Model(Protocol):
    provider: str
    name: str

    async def request(self, messages: Sequence[Message], settings: ModelSettings) -> ModelResponse:
        """One complete response, with the provider's usage."""

    def request_stream(
        self, messages: Sequence[Message], settings: ModelSettings
    ) -> AsyncIterator[StreamEvent]:
        """Text deltas as they arrive, then exactly one final :class:`ModelResponse`.

        Closing the iterator early (cancel) closes the upstream stream.
        """


class Provider(Protocol):
    name: str

    def model(self, name: str) -> Model:
        """The model ``name`` served by this provider."""

    async def aclose(self) -> None:
        """Close the SDK client."""
