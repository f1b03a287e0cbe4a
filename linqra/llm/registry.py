"""From ``provider:model`` strings (and Linqra's step targets) to models; one table, no ladder."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from linqra.config import LLMProviderConfig, LLMSettings
from linqra.errors import ProviderError, ValidationError
from linqra.llm.anthropic import AnthropicProvider
from linqra.llm.base import Model, Provider
from linqra.llm.cohere import CohereProvider
from linqra.llm.gemini import GeminiProvider
from linqra.llm.local import LocalProvider
from linqra.llm.openai import OpenAIProvider
from linqra.llm.routing import RoutedModel, RoutePolicy

__all__ = ["TARGET_PROVIDERS", "LLMRegistry", "Resolved"]

# Linqra's LLM step targets and the provider each one means.
TARGET_PROVIDERS: dict[str, str | None] = {
    "llm": None,
    "openai": "openai",
    "openai-chat": "openai",
    "gemini": "gemini",
    "anthropic": "anthropic",
    "claude": "anthropic",
    "cohere": "cohere",
    "ollama-chat": "ollama",
}
DEFAULT_MODELS = {
    "openai": "gpt-4o-mini",
    "gemini": "gemini-2.0-flash",
    "anthropic": "claude-haiku-4-5",
    "cohere": "command-r",
    "ollama": "llama3.2",
    "local": "local",
}

_FACTORIES: dict[str, Callable[[str, LLMProviderConfig], Provider]] = {
    "openai": lambda name, cfg: OpenAIProvider(
        name, base_url=cfg.base_url, api_key_env=cfg.api_key_env, timeout=cfg.timeout_seconds
    ),
    "anthropic": lambda name, cfg: AnthropicProvider(
        name, base_url=cfg.base_url, api_key_env=cfg.api_key_env, timeout=cfg.timeout_seconds
    ),
    "gemini": lambda name, cfg: GeminiProvider(
        name, base_url=cfg.base_url, api_key_env=cfg.api_key_env, timeout=cfg.timeout_seconds
    ),
    "cohere": lambda name, cfg: CohereProvider(
        name, base_url=cfg.base_url, api_key_env=cfg.api_key_env, timeout=cfg.timeout_seconds
    ),
    "local": lambda name, cfg: LocalProvider(),
}


@dataclass(frozen=True, slots=True)
class Resolved:
    model: Model
    requested: str  # provider:model as asked
    fallback_reason: str | None = None  # set when the local provider answers instead


class LLMRegistry:
    """Providers built once per process from the settings; models resolved per call."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self._providers: dict[str, Provider] = {}
        self._routes: dict[str, RoutedModel] = {}

    def provider(self, name: str) -> Provider:
        if name not in self._providers:
            cfg = self.settings.providers[name]
            self._providers[name] = _FACTORIES[cfg.kind](name, cfg)
        return self._providers[name]

    def parse(
        self, model_ref: str | None, target: str = "llm", field: str = "llmConfig.model"
    ) -> tuple[str, str]:
        """``(provider, model)`` from ``provider:model``, an alias, or a bare model plus the target."""
        ref = (model_ref or "").strip()
        if ref in self.settings.routes:
            return "route", ref
        ref = self.settings.aliases.get(ref, ref)
        if ":" in ref:
            provider, model = ref.split(":", 1)
        else:
            provider = TARGET_PROVIDERS.get(target) or ("local" if not ref else "")
            model = ref
            if not provider:
                raise ValidationError(
                    f"model {ref!r} needs a provider: write provider:model (providers: "
                    f"{', '.join(sorted(self.settings.providers))})",
                    field=field,
                )
        if not model:
            model = DEFAULT_MODELS.get(provider, "")
        if not provider or not model:
            raise ValidationError(f"invalid model {model_ref!r}; write provider:model", field=field)
        return provider, model

    def route(self, alias: str) -> RoutedModel | None:
        """The routed model for ``alias`` (one per process: breakers and bulkheads are shared)."""
        cfg = self.settings.routes.get(alias)
        if cfg is None:
            return None
        if alias not in self._routes:
            models = []
            for ref in cfg.deployments:
                resolved = self.resolve(ref)
                if resolved.fallback_reason is None:
                    models.append(resolved.model)
            if not models:
                return None
            policy = RoutePolicy(
                cfg.max_attempts,
                cfg.timeout_seconds,
                cfg.max_concurrent,
                cfg.failure_threshold,
                cfg.cooldown_seconds,
            )
            self._routes[alias] = RoutedModel(alias, models, policy)
        return self._routes[alias]

    def resolve(self, model_ref: str | None, target: str = "llm") -> Resolved:
        if model_ref and model_ref in self.settings.routes:
            routed = self.route(model_ref)
            if routed is not None:
                return Resolved(routed, f"route:{model_ref}")
            if not self.settings.offline_fallback:
                raise ProviderError(
                    f"route {model_ref!r}: no deployment is available", code="provider_unavailable"
                )
            return Resolved(
                self.provider_or_local().model("local"),
                f"route:{model_ref}",
                "no deployment of the route is available",
            )
        provider, model = self.parse(model_ref, target)
        requested = f"{provider}:{model}"
        cfg = self.settings.providers.get(provider)
        reason = None
        if cfg is None:
            reason = f"provider {provider!r} is not configured"
        elif (
            cfg.kind != "local"
            and cfg.api_key_env
            and not cfg.base_url
            and not os.environ.get(cfg.api_key_env)
        ):
            reason = f"no API key in {cfg.api_key_env}"
        if reason is None:
            return Resolved(self.provider(provider).model(model), requested)
        if not self.settings.offline_fallback:
            known = ", ".join(sorted(self.settings.providers))
            raise ProviderError(
                f"{requested}: {reason} (configured providers: {known})",
                code="provider_unavailable",
            )
        return Resolved(self.provider_or_local().model("local"), requested, reason)

    def provider_or_local(self) -> Provider:
        if "local" in self.settings.providers:
            return self.provider("local")
        return self._providers.setdefault("local", LocalProvider())

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()
