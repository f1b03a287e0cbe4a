"""One typed async API for every configured model, with exact cost, a usage record and the
team's budget on every call.

``complete`` returns the response; ``stream`` yields text deltas, the final response, then the
:class:`Completion`. Every call — finished, failed after tokens were produced, or cancelled
mid-stream — leaves a usage record: priced from the provider's own usage when it reported one,
otherwise from a local count marked ``estimated``. A team with a budget has each call's
pessimistic estimate reserved first (refused with 402 when it would not fit) and the exact cost
settled after. A team's own provider key (``team_keys``, :class:`~linqra.llm.base.TeamKeys`) is
used for its calls, chats and embeddings, before the provider's global key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from linqra.config import Settings
from linqra.errors import BudgetExceeded, ValidationError
from linqra.llm._metrics import LLMMetrics
from linqra.llm.base import StreamEvent, TeamKeys
from linqra.llm.budgets import DEFAULT_OUTPUT_ESTIMATE, BudgetService, Reservation
from linqra.llm.embeddings import (
    DEFAULT_DIMENSIONS,
    CohereEmbedder,
    Embedder,
    Embedding,
    EmbedKind,
    GeminiEmbedder,
    HashingEmbedder,
    OpenAIEmbedder,
)
from linqra.llm.overrides import PriceOverrides
from linqra.llm.pricing import Catalogue, Cost, load_catalogue, price_cost
from linqra.llm.registry import LLMRegistry, Resolved, TeamCredentials
from linqra.llm.routing import RoutedModel
from linqra.llm.tokens import count_prompt, count_tokens
from linqra.llm.types import Delta, Message, ModelResponse, ModelSettings, Usage
from linqra.llm.usage import UsageRepository
from linqra.metrics import NOOP, Metrics
from linqra.resilience import to_the_end
from linqra.store import DocumentStore
from linqra.tracing import close_span, open_span

__all__ = ["Completion", "LLMService"]

_EMBEDDERS: dict[str, Any] = {
    "openai": OpenAIEmbedder,
    "gemini": GeminiEmbedder,
    "cohere": CohereEmbedder,
}
_PROVIDER_EMBEDDERS = (OpenAIEmbedder, GeminiEmbedder, CohereEmbedder)


class Completion:
    """A finished call: the response, what was asked, the cost and the usage record."""

    def __init__(
        self,
        response: ModelResponse,
        resolved: Resolved,
        cost: Cost | None,
        latency_ms: float,
        record: dict[str, Any],
    ) -> None:
        self.response = response
        self.resolved = resolved
        self.cost = cost
        self.latency_ms = latency_ms
        self.record = record


TokenLimit = Callable[[str, int], Awaitable[None]]
"""Spends a team's LLM tokens per minute before a call, or raises ``RateLimited`` (429)."""


class LLMService:
    def __init__(
        self,
        settings: Settings,
        store: DocumentStore,
        registry: LLMRegistry | None = None,
        *,
        team_keys: TeamKeys | None = None,
        token_limit: TokenLimit | None = None,
        metrics: Metrics = NOOP,
    ) -> None:
        self.settings = settings
        self.metered = LLMMetrics(metrics)
        self.team_keys = team_keys
        self.token_limit = token_limit
        self.registry = registry or LLMRegistry(settings.llm)
        self.catalogue: Catalogue = load_catalogue(settings.llm.catalogue)
        self.usage = UsageRepository(store)
        self.overrides = PriceOverrides(store, self.catalogue)
        self.budgets = BudgetService(store, self.catalogue)

    async def price(self, team_id: str, resolved: Resolved, response: ModelResponse) -> Cost | None:
        """The exact cost at the team's price (its override, else the catalogue's)."""
        price, version = await self.overrides.effective(team_id, response.provider, response.model)
        if price is None and not resolved.fallback_reason:  # dated names, e.g. gpt-4o-2024-08-06
            price, version = await self.overrides.effective(
                team_id, *resolved.requested.split(":", 1)
            )
        if price is None:
            return None
        return price_cost(price, response.usage, self.catalogue.currency, version)

    async def complete(
        self,
        team_id: str,
        model_ref: str | None,
        messages: Sequence[Message],
        settings: ModelSettings,
        *,
        caller: Mapping[str, Any],
        target: str = "llm",
    ) -> Completion:
        resolved = await self._resolve(team_id, model_ref, target)
        reservation = await self._reserve(team_id, resolved, messages, settings, caller)
        t0 = time.perf_counter()
        call_span = open_span(f"chat {resolved.model.name}", attributes=_span_attributes(resolved))
        try:
            response = await resolved.model.request(messages, settings)
        except BaseException as exc:
            close_span(call_span, error=exc)
            await asyncio.shield(self.budgets.settle(reservation, Decimal(0)))
            self._failed(team_id, resolved, t0, exc)
            raise
        close_span(call_span, attributes=_usage_attributes(response))
        done = await self._settle(team_id, resolved, response, t0, caller)
        await self.budgets.settle(reservation, done.cost.amount if done.cost else Decimal(0))
        return done

    async def stream(
        self,
        team_id: str,
        model_ref: str | None,
        messages: Sequence[Message],
        settings: ModelSettings,
        *,
        caller: Mapping[str, Any],
        target: str = "llm",
        on_resolved: Callable[[Resolved], None] | None = None,
    ) -> AsyncGenerator[StreamEvent | Completion, None]:
        """Deltas, then the final :class:`ModelResponse`, then the :class:`Completion`;
        ``on_resolved`` learns the model that answers before the first delta (an OpenAI stream
        names it in every chunk)."""
        resolved = await self._resolve(team_id, model_ref, target)
        if on_resolved is not None:
            on_resolved(resolved)
        reservation = await self._reserve(team_id, resolved, messages, settings, caller)
        t0 = time.perf_counter()
        parts: list[str] = []
        final: ModelResponse | None = None
        call_span = open_span(f"chat {resolved.model.name}", attributes=_span_attributes(resolved))
        try:
            async for event in resolved.model.request_stream(messages, settings):
                if isinstance(event, Delta):
                    if not parts:
                        self.metered.first_token(resolved.model.provider, resolved.model.name, t0)
                    parts.append(event.text)
                elif isinstance(event, ModelResponse):
                    final = event
                yield event
        except (asyncio.CancelledError, GeneratorExit) as exc:
            close_span(call_span, error=exc)
            partial = self._partial(
                team_id, resolved, messages, "".join(parts), t0, caller, "cancelled"
            )
            spent = await to_the_end(partial)
            await to_the_end(self.budgets.settle(reservation, spent))
            raise
        except Exception as exc:
            close_span(call_span, error=exc)
            spent = Decimal(0)
            if parts:
                spent = await self._partial(
                    team_id, resolved, messages, "".join(parts), t0, caller, "failed"
                )
            else:
                self._failed(team_id, resolved, t0, exc)
            await self.budgets.settle(reservation, spent)
            raise
        assert final is not None
        close_span(call_span, attributes=_usage_attributes(final))
        done = await self._settle(team_id, resolved, final, t0, caller)
        await self.budgets.settle(reservation, done.cost.amount if done.cost else Decimal(0))
        yield done

    async def _credentials(self, team_id: str, providers: Sequence[str]) -> TeamCredentials | None:
        """The team's own keys for ``providers`` (``None``: it has none of them)."""
        if self.team_keys is None:
            return None
        keys = {}
        for provider in providers:
            key = await self.team_keys.reveal(team_id, provider)
            if key:
                keys[provider] = key
        return TeamCredentials(team_id, keys) if keys else None

    async def answered_locally(self, team_id: str, providers: Sequence[str]) -> set[str]:
        """Which of ``providers`` a call of ``team_id`` would now have answered by the local
        model: with ``offline_fallback`` on, those it cannot reach (not configured, or no key,
        the team's or the environment's; :meth:`~linqra.llm.registry.LLMRegistry.unreachable`).
        Which keys the team has is read from their masked list: none is opened."""
        if not self.settings.llm.offline_fallback:
            return set()
        own = await self.team_keys.key_providers(team_id) if self.team_keys is not None else set()
        return {
            p
            for p in providers
            if p != "local" and self.registry.unreachable(p, own_key=p in own) is not None
        }

    async def _resolve(self, team_id: str, model_ref: str | None, target: str) -> Resolved:
        credentials = await self._credentials(
            team_id, self.registry.providers_of(model_ref, target)
        )
        return self.registry.resolve(model_ref, target, credentials=credentials)

    async def _reserve(
        self,
        team_id: str,
        resolved: Resolved,
        messages: Sequence[Message],
        settings: ModelSettings,
        caller: Mapping[str, Any],
    ) -> Reservation | None:
        model: Any = resolved.model
        if isinstance(model, RoutedModel):  # price a route by its first deployment
            model = model.deployments[0].model
        if self.token_limit is not None:  # tokens per minute: the prompt and the whole allowance
            allowance = settings.max_tokens or DEFAULT_OUTPUT_ESTIMATE
            await self.token_limit(team_id, count_prompt(messages, settings.tools) + allowance)
        price, _ = await self.overrides.effective(team_id, model.provider, model.name)
        estimate = self.budgets.estimate(price, list(messages), settings)
        started_by = str(caller.get("executed_by") or "")
        key_id = started_by.removeprefix("key:") if started_by.startswith("key:") else None
        return await self._budget(team_id, estimate, key_id)

    async def _budget(
        self, team_id: str, estimate: Decimal, key_id: str | None = None
    ) -> Reservation | None:
        try:
            return await self.budgets.reserve(team_id, estimate, key_id=key_id)
        except BudgetExceeded as exc:
            self.metered.refused(team_id, exc)
            raise

    def _failed(self, team_id: str, resolved: Resolved, t0: float, exc: BaseException) -> None:
        """A call that ended without an answer or a token."""
        status = "cancelled" if isinstance(exc, asyncio.CancelledError | GeneratorExit) else "error"
        model = resolved.model
        self.metered.call(team_id, model.provider, model.name, operation="chat", status=status,
                          started=t0)  # fmt: skip

    async def _settle(
        self,
        team_id: str,
        resolved: Resolved,
        response: ModelResponse,
        t0: float,
        caller: Mapping[str, Any],
    ) -> Completion:
        latency = round((time.perf_counter() - t0) * 1000, 3)
        cost = await self.price(team_id, resolved, response)
        record = await self.usage.record(
            team_id,
            provider=response.provider,
            model=response.model,
            requested=resolved.requested,
            usage=response.usage,
            cost=cost,
            latency_ms=latency,
            caller=caller,
        )
        self.metered.call(team_id, response.provider, response.model, operation="chat",
                          status="ok", started=t0, usage=response.usage, cost=cost)  # fmt: skip
        return Completion(response, resolved, cost, latency, record)

    async def _partial(
        self,
        team_id: str,
        resolved: Resolved,
        messages: Sequence[Message],
        text: str,
        t0: float,
        caller: Mapping[str, Any],
        status: str,
    ) -> Decimal:
        """Usage of a stream that did not finish: counted locally, marked estimated, still priced."""
        usage = Usage(
            input_tokens=count_prompt(messages),
            output_tokens=count_tokens(text),
            estimated=True,
        )
        model = resolved.model
        partial = ModelResponse(text, model.name, model.provider, usage)
        cost = await self.price(team_id, resolved, partial)
        await self.usage.record(
            team_id,
            provider=model.provider,
            model=model.name,
            requested=resolved.requested,
            usage=usage,
            cost=cost,
            latency_ms=round((time.perf_counter() - t0) * 1000, 3),
            caller=caller,
            status="cancelled" if status == "cancelled" else "failed",
        )
        self.metered.call(team_id, model.provider, model.name, operation="chat",
                          status="cancelled" if status == "cancelled" else "failed", started=t0,
                          usage=usage, cost=cost)  # fmt: skip
        return cost.amount if cost else Decimal(0)

    # -- embeddings ---------------------------------------------------------------------
    def embedder(self, ref: str, dimension: int | None = None) -> Embedder:
        """The embedder for ``provider:model`` (``local:hash-512`` is the offline default)."""
        provider, _, model = ref.partition(":")
        if provider == "local":
            size = dimension or (
                int(model[5:]) if model.startswith("hash-") and model[5:].isdigit() else 512
            )
            try:
                return HashingEmbedder(size)
            except ValueError as exc:
                raise ValidationError(str(exc), field="dimension") from None
        cfg = self.settings.llm.providers.get(provider)
        if cfg is None or not model:
            known = ", ".join(sorted({"local", *self.settings.llm.providers}))
            raise ValidationError(
                f"unknown embedder {ref!r}; write provider:model (providers: {known})",
                field="embedder",
            )
        adapter = _EMBEDDERS.get(cfg.kind)
        if adapter is None:
            raise ValidationError(f"provider {provider!r} has no embeddings API", field="embedder")
        known_size = dimension or DEFAULT_DIMENSIONS.get(f"{cfg.kind}:{model}")
        if known_size is None:
            raise ValidationError(
                f"the dimension of {ref} is not known: give dimension", field="dimension"
            )
        embedder: Embedder = adapter(self.registry.provider(provider), model, known_size)
        return embedder

    async def embed(
        self,
        team_id: str,
        embedder: Embedder,
        texts: Sequence[str],
        kind: EmbedKind,
        *,
        caller: Mapping[str, Any],
    ) -> Embedding:
        """Vectors for ``texts``; provider calls are budgeted, priced and recorded like chats."""
        if embedder.provider == "local":  # offline hashing: no call, no cost, no record
            return await embedder.embed(texts, kind)
        credentials = await self._credentials(team_id, [embedder.provider])
        if credentials is not None and isinstance(embedder, _PROVIDER_EMBEDDERS):
            embedder = embedder.using(self.registry.provider(embedder.provider, credentials))
        price, version = await self.overrides.effective(team_id, embedder.provider, embedder.model)
        estimate = (
            Decimal(sum(count_tokens(t) for t in texts) * 12 // 10 + 1)
            * max(price.rates.input, price.rates.cache_read)
            / Decimal(1_000_000)
            if price
            else Decimal(0)
        )
        reservation = await self._budget(team_id, estimate)
        t0 = time.perf_counter()
        try:
            result = await embedder.embed(texts, kind)
        except BaseException as exc:
            await asyncio.shield(self.budgets.settle(reservation, Decimal(0)))
            status = "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"
            self.metered.call(team_id, embedder.provider, embedder.model, operation="embed",
                              status=status, started=t0)  # fmt: skip
            raise
        usage = Usage(input_tokens=result.input_tokens, estimated=result.estimated)
        cost = price_cost(price, usage, self.catalogue.currency, version) if price else None
        await self.usage.record(
            team_id,
            provider=embedder.provider,
            model=embedder.model,
            requested=embedder.name,
            usage=usage,
            cost=cost,
            latency_ms=round((time.perf_counter() - t0) * 1000, 3),
            caller=caller,
        )
        self.metered.call(team_id, embedder.provider, embedder.model, operation="embed",
                          status="ok", started=t0, usage=usage, cost=cost)  # fmt: skip
        await self.budgets.settle(reservation, cost.amount if cost else Decimal(0))
        return result

    async def aclose(self) -> None:
        """Close the provider clients (the store belongs to whoever passed it in)."""
        await self.registry.aclose()


def _span_attributes(resolved: Resolved) -> dict[str, Any]:
    """A model call's span (OpenTelemetry's GenAI conventions): provider and model only."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": resolved.model.provider,
        "gen_ai.request.model": resolved.model.name,
    }


def _usage_attributes(response: ModelResponse) -> dict[str, Any]:
    usage = response.usage
    return {
        "gen_ai.response.model": response.model,
        "gen_ai.usage.input_tokens": usage.input_tokens + usage.cache_read_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
    }
