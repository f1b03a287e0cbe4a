"""The settings of who may call the API and how often: ``auth`` (header or OIDC mode, the
token's claims, API-key caching, trusted proxies, audit retention) and ``rate_limits``.

Named and documented in :mod:`linqra.config`, which imports them; kept apart so that module stays
one screenful of settings per area.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, IPvAnyNetwork, ValidationInfo, field_validator

__all__ = ["AuthSettings", "OidcSettings", "RateLimitSettings", "SigningAlgorithm"]


SigningAlgorithm = Literal[  # asymmetric only: an HMAC secret shared with clients proves nothing
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]


class OidcSettings(BaseModel):
    """Verifying OpenID Connect access tokens (Keycloak or any OIDC provider).

    Claims map the Keycloak way by default: roles from ``realm_access.roles`` and
    ``resource_access.<client_id>.roles``; teams from the ``teams`` claim (a list of team ids)
    and from ``groups`` entries ``/teams/<team>/<role>``; the user from ``sub``.
    """

    model_config = {"extra": "forbid"}

    issuer: str | None = Field(default=None, description="exact `iss`; discovery is read from it")
    audience: list[str] = Field(
        default_factory=list, description="accepted `aud` values (at least one must match)"
    )
    jwks_uri: str | None = Field(default=None, description="default: from discovery")
    algorithms: list[SigningAlgorithm] = Field(
        default_factory=lambda: list[SigningAlgorithm](["RS256"]), min_length=1
    )
    leeway_seconds: float = Field(default=30.0, ge=0, le=300)
    jwks_cache_seconds: float = Field(default=300.0, gt=0, description="keys kept this long")
    jwks_refresh_cooldown_seconds: float = Field(
        default=30.0, ge=0, description="an unknown `kid` refreshes the keys at most this often"
    )
    http_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    client_id: str | None = Field(
        default=None, description="the client whose `resource_access` roles count"
    )
    console_client_id: str | None = Field(
        default=None,
        description="the public client (Authorization Code + PKCE) the web console signs in "
        "with; unset, the console cannot sign in",
    )
    console_scopes: str = Field(
        default="openid profile",
        description="scopes the console asks for: enough for an access token whose `aud` is "
        "one of `audience`",
    )
    user_claim: str = "sub"
    username_claim: str = "preferred_username"
    teams_claim: str = "teams"
    groups_claim: str = "groups"
    team_group_prefix: str = "/teams/"
    platform_admin_role: str = "gateway_admin"


class AuthSettings(BaseModel):
    """Who may call the API. ``header`` trusts ``X-Team-Id`` (embedded profile only: anyone who
    can reach the gateway picks any team); ``oidc`` verifies bearer tokens and API keys."""

    model_config = {"extra": "forbid"}

    mode: Literal["header", "oidc"] = "header"
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    key_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        le=5,
        description="how long a gateway replica trusts an API key it checked: a revoked key "
        "stops working within this bound",
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list, description="CIDRs whose X-Forwarded-For is believed"
    )
    audit_retention_days: int = Field(default=365, ge=1)


class RateLimitSettings(BaseModel):
    """Rate limits the gateway holds in ``cache_url`` (``linqra/ratelimit.py``).

    Each rule is ``"<amount>/<period>"`` (``600/minute``, ``10 per second``, ``5000/2 hours``),
    counted over a sliding window: in Redis for the whole cluster, with ``memory://`` per process
    (embedded profile only). While the cache is unreachable a rule named in ``fail_closed``
    answers 503 with ``Retry-After``; the others allow.
    """

    model_config = {"extra": "forbid"}

    enabled: bool = True
    api_key: str = Field(default="3000/minute", description="requests per API key")
    team: str = Field(default="6000/minute", description="requests per team")
    widget: str = Field(
        default="120/minute", description="requests per public widget key and client IP"
    )
    llm_tokens: str = Field(default="20000000/minute", description="LLM tokens per team")
    failed_auth: str = Field(
        default="600/minute", description="failed authentications per client IP"
    )
    fail_closed: tuple[Literal["api_key", "team", "widget", "llm_tokens", "failed_auth"], ...] = (
        Field(
            default=("widget",),
            description="rules that deny (503) while the cache is unreachable; the others allow "
            "(failed_auth is checked on every request, so failing it closed would make a cache "
            "outage a whole-gateway outage)",
        )
    )
    timeout_seconds: float = Field(
        default=1.0, gt=0, le=60, description="longest one rate-limit decision may wait for Redis"
    )
    outage_retry_seconds: float = Field(
        default=2.0,
        gt=0,
        le=300,
        description="after a failed call the cache is left alone this long (and Retry-After)",
    )

    @field_validator("api_key", "team", "widget", "llm_tokens", "failed_auth")
    @classmethod
    def _rate(cls, value: str, info: ValidationInfo) -> str:
        from linqra.errors import ValidationError as BadRate
        from linqra.ratelimit import parse_rate

        try:
            parse_rate(value, setting=f"rate_limits.{info.field_name}")
        except BadRate as exc:
            raise ValueError(exc.message) from None
        return value
