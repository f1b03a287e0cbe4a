"""From ``provider:model`` strings (and Linqra's step targets) to models; one table, no ladder.

A call may carry a team's own keys (:class:`TeamCredentials`): a provider the team has a key for
is then served by a provider object of the team's own, built with that key (and a route whose
deployments use one by a routed model of its own, so the team's breakers are its own too); every
other provider is the process's shared one with the global key. A team's provider is rebuilt
when its key changes; the one it replaces is closed with the registry (a call may still use it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from linqra.config import LLMProviderConfig, LLMSettings
from linqra.errors import ProviderError, ValidationError
from linqra.llm.anthropic import AnthropicProvider
from linqra.llm.base import Model, Provider
from linqra.llm.cohere import CohereProvider
from linqra.llm.gemini import GeminiProvider
from linqra.llm.local import LocalProvider
from linqra.llm.openai import OpenAIProvider
from linqra.llm.routing import RoutedModel, RoutePolicy

__all__ = [
    "TARGET_PROVIDERS",
    "LLMRegistry",
    "Resolved",
    "TeamCredentials",
    "sdk_module",
]

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

_VENDORS: dict[str, type[OpenAIProvider | AnthropicProvider | GeminiProvider | CohereProvider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
    "cohere": CohereProvider,
}


def _missing_key(cfg: LLMProviderConfig, own_key: bool = False) -> bool:
    """Whether a call to ``cfg`` has no key to send: it takes one from the environment, has no
    base URL of its own (a server that may need none), and neither the team (``own_key``) nor
    the environment gives one."""
    return bool(
        cfg.kind != "local"
        and cfg.api_key_env
        and not cfg.base_url
        and not own_key
        and not os.environ.get(cfg.api_key_env)
    )


def sdk_module(settings: LLMSettings, provider: str) -> str | None:
    """The vendor SDK a call to the configured provider ``provider`` imports on its first call
    (``None``: it imports none, or ``provider`` is not configured)."""
    cfg = settings.providers.get(provider)
    vendor = _VENDORS.get(cfg.kind) if cfg is not None else None
    return vendor.sdk_module if vendor is not None else None


def _provider(name: str, cfg: LLMProviderConfig, key: str | None) -> Provider:
    """The provider ``cfg`` describes, with the team's own key (``None``: the global one)."""
    if cfg.kind == "local":
        return LocalProvider()
    vendor = _VENDORS[cfg.kind]
    return vendor(
        name,
        base_url=cfg.base_url,
        api_key=key,
        api_key_env=cfg.api_key_env,
        timeout=cfg.timeout_seconds,
    )


@dataclass(frozen=True, slots=True)
class Resolved:
    model: Model
    requested: str  # provider:model as asked
    fallback_reason: str | None = None  # set when the local provider answers instead


@dataclass(frozen=True, slots=True)
class TeamCredentials:
    """A team's own API keys, by provider name, for one call (never logged: ``repr`` hides
    them)."""

    team_id: str
    keys: Mapping[str, str] = field(repr=False)


class LLMRegistry:
    """Providers built once per process from the settings; models resolved per call."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self._providers: dict[str, Provider] = {}
        self._routes: dict[str, RoutedModel] = {}
        # (team, provider or route alias) -> (the team's key(s) it was built with, the object)
        self._team_providers: dict[tuple[str, str], tuple[str, Provider]] = {}
        self._team_routes: dict[tuple[str, str], tuple[tuple[tuple[str, str], ...], RoutedModel]]
        self._team_routes = {}
        self._retired: list[Provider] = []

    def provider(self, name: str, credentials: TeamCredentials | None = None) -> Provider:
        """The provider ``name``: the team's own when ``credentials`` hold a key for it."""
        key = credentials.keys.get(name) if credentials is not None else None
        if credentials is not None and key:
            return self._team_provider(credentials.team_id, name, key)
        if name not in self._providers:
            cfg = self.settings.providers[name]
            self._providers[name] = _provider(name, cfg, None)
        return self._providers[name]

    def _team_provider(self, team_id: str, name: str, key: str) -> Provider:
        held = self._team_providers.get((team_id, name))
        if held is None or held[0] != key:
            if held is not None:  # the team's key changed; a call may still be using the old one
                self._retired.append(held[1])
            cfg = self.settings.providers[name]
            held = (key, _provider(name, cfg, key))
            self._team_providers[(team_id, name)] = held
        return held[1]

    def providers_of(self, model_ref: str | None, target: str = "llm") -> list[str]:
        """The configured providers that take a key and a call to ``model_ref`` may reach (a
        route's: each deployment's); none when it does not parse (``resolve`` says why)."""
        refs = (
            self.settings.routes[model_ref].deployments
            if model_ref and model_ref in self.settings.routes
            else [model_ref]
        )
        names: list[str] = []
        for ref in refs:
            try:
                name, _ = self.parse(ref, target)
            except ValidationError:
                continue
            cfg = self.settings.providers.get(name)
            if cfg is not None and cfg.kind != "local" and name not in names:
                names.append(name)
        return names

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

    def route(self, alias: str, credentials: TeamCredentials | None = None) -> RoutedModel | None:
        """The routed model for ``alias`` (one per process: breakers and bulkheads are shared;
        a team with its own key for a deployment gets one of its own)."""
        if alias not in self.settings.routes:
            return None
        own = tuple(
            (name, credentials.keys[name])
            for name in self.providers_of(alias)
            if credentials is not None and credentials.keys.get(name)
        )
        if credentials is None or not own:
            if alias not in self._routes:
                routed = self._build_route(alias, None)
                if routed is None:
                    return None
                self._routes[alias] = routed
            return self._routes[alias]
        held = self._team_routes.get((credentials.team_id, alias))
        if held is None or held[0] != own:
            routed = self._build_route(alias, credentials)
            if routed is None:
                return None
            held = (own, routed)
            self._team_routes[(credentials.team_id, alias)] = held
        return held[1]

    def _build_route(self, alias: str, credentials: TeamCredentials | None) -> RoutedModel | None:
        cfg = self.settings.routes[alias]
        models = []
        for ref in cfg.deployments:
            resolved = self.resolve(ref, credentials=credentials)
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
        return RoutedModel(alias, models, policy)

    def resolve(
        self,
        model_ref: str | None,
        target: str = "llm",
        *,
        credentials: TeamCredentials | None = None,
    ) -> Resolved:
        """The model for ``model_ref``; ``credentials``: the calling team's own keys."""
        if model_ref and model_ref in self.settings.routes:
            routed = self.route(model_ref, credentials)
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
        own_key = bool(credentials is not None and credentials.keys.get(provider))
        reason = self.unreachable(provider, own_key=own_key)
        if reason is None:
            return Resolved(self.provider(provider, credentials).model(model), requested)
        if not self.settings.offline_fallback:
            known = ", ".join(sorted(self.settings.providers))
            raise ProviderError(
                f"{requested}: {reason} (configured providers: {known})",
                code="provider_unavailable",
            )
        return Resolved(self.provider_or_local().model("local"), requested, reason)

    def unreachable(self, provider: str, *, own_key: bool = False) -> str | None:
        """Why a call to ``provider`` cannot reach it — not configured, or no key to send (the
        team's own, ``own_key``, or the environment's) — or ``None``: it can. The call is then
        answered by the local model (``offline_fallback``) or refused."""
        cfg = self.settings.providers.get(provider)
        if cfg is None:
            return f"provider {provider!r} is not configured"
        if _missing_key(cfg, own_key):
            return f"no API key in {cfg.api_key_env}"
        return None

    def provider_or_local(self) -> Provider:
        if "local" in self.settings.providers:
            return self.provider("local")
        return self._providers.setdefault("local", LocalProvider())

    async def aclose(self) -> None:
        held = [
            *self._providers.values(),
            *(p for _, p in self._team_providers.values()),
            *self._retired,
        ]
        for provider in held:
            await provider.aclose()
        self._providers.clear()
        self._team_providers.clear()
        self._team_routes.clear()
        self._retired.clear()
