"""Who is calling: verified identities from OpenID Connect access tokens (and, beside them,
principals, API keys and audit).

The names below live in :mod:`linqra.auth.oidc` and are loaded on first use: it pulls in
``aiohttp`` and ``jwt`` (about 0.12 s), which only an OIDC gateway needs, and every process that
imports a module of this package — every actor, through :mod:`linqra.system` — would pay for them
at start (docs/benchmarks.md, "B3 — cold start")."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from linqra.auth.oidc import MAX_TOKEN_CHARS, Identity, InvalidToken, OidcVerifier

__all__ = ["MAX_TOKEN_CHARS", "Identity", "InvalidToken", "OidcVerifier"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("linqra.auth.oidc"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
