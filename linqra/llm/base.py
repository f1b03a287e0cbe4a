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

__all__ = ["Model", "Provider", "StreamEvent", "TeamKeys"]

StreamEvent = Delta | ToolCallDelta | ModelResponse


class Model(Protocol):
    """One wire format: chat messages and settings in, a response out.

    A response names its provider and carries the usage the provider reported (``local``
    counts with a real tokenizer). Its ``finish_reason`` is in OpenAI's words (``stop``,
    ``length``, ``tool_calls``, ``content_filter``), whatever the vendor calls it.

    Offered tools with ``tool_choice`` ``"required"`` (or a tool's name), a model asks for a
    call: the response has the tool calls, empty text and ``finish_reason`` ``tool_calls``.
    Given the tool's result (a ``tool`` message answering the call), it answers in text from it.

    Every failure is a :class:`linqra.errors.ProviderError`, never a vendor SDK's exception: a
    provider that cannot be reached and a rate limit (with the provider's ``Retry-After``) are
    retryable; a body that is not the wire format is not.
    """

    provider: str
    name: str

    async def request(self, messages: Sequence[Message], settings: ModelSettings) -> ModelResponse:
        """One complete response, with the provider's usage."""

    def request_stream(
        self, messages: Sequence[Message], settings: ModelSettings
    ) -> AsyncIterator[StreamEvent]:
        """Text deltas as they arrive, then exactly one final :class:`ModelResponse` whose text
        is the deltas joined; a tool call arrives as :class:`ToolCallDelta` pieces that add up to
        the final response's ``tool_calls``.

        Closing the iterator early (cancel) closes the upstream stream.
        """


class Provider(Protocol):
    name: str

    def model(self, name: str) -> Model:
        """The model ``name`` served by this provider."""

    async def aclose(self) -> None:
        """Close the SDK client."""


class TeamKeys(Protocol):
    """A team's own API keys: a call for the team uses its key for a provider before the
    provider's global one (``api_key_env``)."""

    async def reveal(self, team_id: str, provider: str) -> str | None:
        """The team's key for ``provider``, or ``None`` when it has none."""

    async def key_providers(self, team_id: str) -> set[str]:
        """The providers the team has a key for (none of them opened)."""
