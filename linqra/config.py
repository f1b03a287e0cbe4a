"""One typed settings object: a YAML file plus ``LINQRA_*`` environment variables.

Precedence, highest first: keyword arguments, ``LINQRA_*`` variables (nested with ``__``, e.g.
``LINQRA_HTTP__PORT=9000``), the YAML file, the defaults here. The YAML file is
``$LINQRA_CONFIG`` if set, else ``configs/linqra.yaml`` when it exists in the working directory.
Every backend is one URL; the defaults are the embedded ones (no server, no key).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from linqra._config_access import AuthSettings, OidcSettings, RateLimitSettings
from linqra._config_alerts import AlertSettings
from linqra._config_chat import ChatSettings
from linqra._config_io_pool import IOPoolSettings
from linqra._config_sections import LoggingSettings, TracingSettings
from linqra._config_topology import Connections, ConnectionSettings
from linqra._config_types import ReadableFile, WebOrigin

__all__ = [
    "AgentSettings",
    "AuthSettings",
    "ChatSettings",
    "ConnectionSettings",
    "EgressPolicy",
    "ExecutionSettings",
    "HttpSettings",
    "KnowledgeSettings",
    "LLMProviderConfig",
    "LLMSettings",
    "LoggingSettings",
    "MetricsSettings",
    "OidcSettings",
    "RateLimitSettings",
    "RaySettings",
    "RouteConfig",
    "ServiceConfig",
    "Settings",
    "TracingSettings",
    "VectorIndexSettings",
    "load_settings",
]

DEFAULT_CONFIG = Path("configs/linqra.yaml")


class ServiceConfig(BaseModel):
    """A registered HTTP service: one or more base URLs, used round-robin."""

    model_config = {"extra": "forbid"}

    urls: list[str] = Field(min_length=1)
    timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    headers: dict[str, str] = Field(default_factory=dict)
    failure_threshold: int = Field(
        default=5, ge=1, description="consecutive failures that open the breaker"
    )
    cooldown_seconds: float = Field(
        default=30.0, gt=0, description="how long an open breaker refuses calls"
    )

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"service URL must start with http:// or https://: {url!r}")
        return [u.rstrip("/") for u in urls]


class EgressPolicy(BaseModel):
    """Which addresses ad-hoc ``http`` steps may reach.

    Link-local addresses and cloud metadata endpoints are always refused.
    """

    model_config = {"extra": "forbid"}

    allow_loopback: bool = True
    allow_private: bool = False
    allowed_schemes: list[str] = Field(default_factory=lambda: ["http", "https"])


class HttpSettings(BaseModel):
    model_config = {"extra": "forbid"}

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_json_depth: int = Field(default=32, ge=2, le=200)
    wait_timeout_seconds: float = Field(
        default=60.0, gt=0, description="longest ?wait=true and /linq wait"
    )
    tls_certfile: ReadableFile | None = Field(default=None, description="PEM certificate (chain)")
    tls_keyfile: ReadableFile | None = Field(default=None, description="its PEM private key")
    cors_origins: list[WebOrigin] = Field(
        default_factory=list, description="browser consoles' origins; empty: no CORS headers"
    )

    @property
    def tls(self) -> bool:
        """Whether the gateway serves HTTPS (both files are set, or neither)."""
        return self.tls_certfile is not None

    @model_validator(mode="after")
    def _tls_pair(self) -> HttpSettings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            have, lack = ("cert", "key") if self.tls_keyfile is None else ("key", "cert")
            raise ValueError(
                f"http.tls_{have}file is set but http.tls_{lack}file is not: HTTPS needs both "
                "the certificate and its key (or neither)"
            )
        return self


class RaySettings(BaseModel):
    model_config = {"extra": "forbid"}
    address: str | None = Field(default=None, description="None starts a local cluster")
    num_cpus: int | None = Field(default=2, ge=1)
    namespace: str = "linqra"
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8265


class VectorIndexSettings(BaseModel):
    """How a collection's vectors are indexed (docs/knowledge.md, "Index strategy")."""

    model_config = {"extra": "forbid"}

    kind: Literal["auto", "flat", "ivf_flat", "hnsw"] = Field(
        default="auto",
        description="auto: on Milvus Lite FLAT (exact) below flat_max_rows rows, IVF_FLAT from "
        "there, rebuilt as the collection grows; on a Milvus server HNSW",
    )
    flat_max_rows: int = Field(
        default=50_000,
        ge=0,
        description="Milvus Lite collections switch from FLAT to IVF_FLAT at this many rows "
        "(after a flush; back to FLAT below half of it)",
    )
    ivf_probe_fraction: float = Field(
        default=1 / 16,
        gt=0,
        le=1,
        description="share of IVF_FLAT's lists a search scans: nprobe = nlist * this, "
        "nlist = 4 * sqrt(rows when built)",
    )
    hnsw_m: int = Field(default=16, ge=4, le=64, description="HNSW links per node")
    hnsw_ef_construction: int = Field(default=200, ge=8, le=1024, description="HNSW build breadth")
    hnsw_ef: int = Field(
        default=128, ge=1, le=4096, description="HNSW search breadth (at least top_k)"
    )


class KnowledgeSettings(BaseModel):
    """The Knowledge Hub: vector store, embedder, upload limits and chunking."""

    model_config = {"extra": "forbid"}

    vector_uri: str | None = Field(
        default=None,
        description="Milvus URI (http://host:19530); None: `linqra up` runs Milvus Lite on "
        "loopback with its data in data_dir/milvus",
    )
    vector_token: str | None = Field(default=None, description="Milvus user:password or token")
    vector_index: VectorIndexSettings = Field(default_factory=VectorIndexSettings)
    default_embedder: str = Field(
        default="local:hash-512", description="provider:model of new collections' embedder"
    )
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    chunk_tokens: int = Field(default=300, ge=32, le=8000)
    chunk_overlap: int = Field(default=50, ge=0, le=2000)
    blob_dir: Path | None = Field(
        default=None, description="original files; default data_dir/blobs"
    )
    stale_after_seconds: float = Field(
        default=120.0,
        gt=0,
        description="an ingestion silent this long (no progress) is re-submitted by the runner",
    )


class AgentSettings(BaseModel):
    """Agent actors, the scheduler and event triggers."""

    model_config = {"extra": "forbid"}

    idle_seconds: float = Field(
        default=60.0, gt=0, description="an agent actor without work this long exits (passivation)"
    )
    stale_after_seconds: float = Field(
        default=30.0,
        gt=0,
        description="a task execution silent this long is adopted or re-dispatched",
    )
    misfire_threshold_seconds: float = Field(
        default=60.0,
        ge=0,
        description="a cron fire later than this is a misfire (its policy applies)",
    )
    async_step_workers: int = Field(
        default=1,
        ge=0,
        le=64,
        description="actors running queued async: true steps (0: run them in the runner)",
    )
    events_url: str = Field(
        default="ray://",
        description="event bus: ray:// (a named actor, embedded), memory:// (one process), "
        "redis://…, kafka://host:port",
    )
    max_event_deliveries: int = Field(
        default=5,
        ge=1,
        le=100,
        description="an event whose handling failed this many times is moved to dead_letters "
        "and acknowledged (never delivered again)",
    )
    event_retry_seconds: float = Field(
        default=1.0,
        gt=0,
        le=300,
        description="wait before a failed event is handled again, doubling each time (max 60 s)",
    )
    webhook_tolerance_seconds: float = Field(
        default=300.0,
        ge=1,
        le=3600,
        description="a webhook call signed longer ago (or further ahead) than this is refused; "
        "a signature is remembered for twice this long so it cannot be replayed",
    )


class ExecutionSettings(IOPoolSettings):
    """Knobs of the workflow runner and its step executors (the I/O pool's: ``IOPoolSettings``)."""

    model_config = {"extra": "forbid"}

    cpu_step_num_cpus: float = Field(default=1.0, gt=0)
    cpu_pool_size: int = Field(
        default=1,
        ge=0,
        le=64,
        description="warm workers the runner keeps for CPU (`task`) steps (they reserve no CPU: "
        "at most this many steps run beyond Ray's CPU count); steps that find none free run as "
        "Ray tasks (0: always)",
    )
    cpu_pool_idle_seconds: float = Field(
        default=30.0, gt=0, description="a warm CPU-step worker idle this long is stopped"
    )
    default_step_timeout_seconds: float = Field(default=300.0, gt=0)
    default_max_attempts: int = Field(default=1, ge=1, le=20)
    max_step_runs: int = Field(
        default=1000, ge=1, description="bound on step runs per execution (jump loops)"
    )
    max_step_output_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=4 * 1024 * 1024,
        description="largest step output (compact JSON); a step returning more fails with "
        "output_too_large and nothing oversized is stored",
    )
    runners: int = Field(
        default=1, ge=1, le=64, description="runner actors sharing the executions (on Ray)"
    )
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    stale_after_seconds: float = Field(default=30.0, gt=0)
    orphan_policy: Literal["resume", "fail"] = "resume"
    max_auto_resumes: int = Field(default=3, ge=0)


class LLMProviderConfig(BaseModel):
    """One LLM provider: its wire format (``kind``), where it is, and where its key comes from."""

    model_config = {"extra": "forbid"}

    kind: Literal["openai", "anthropic", "gemini", "cohere", "local"] = "openai"
    base_url: str | None = None
    api_key_env: str | None = Field(
        default=None, description="environment variable holding the key"
    )
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)


def _default_providers() -> dict[str, LLMProviderConfig]:
    return {
        "local": LLMProviderConfig(kind="local"),
        "openai": LLMProviderConfig(kind="openai", api_key_env="OPENAI_API_KEY"),
        "anthropic": LLMProviderConfig(kind="anthropic", api_key_env="ANTHROPIC_API_KEY"),
        "gemini": LLMProviderConfig(kind="gemini", api_key_env="GEMINI_API_KEY"),
        "cohere": LLMProviderConfig(kind="cohere", api_key_env="CO_API_KEY"),
        "ollama": LLMProviderConfig(kind="openai", base_url="http://127.0.0.1:11434/v1"),
    }


class RouteConfig(BaseModel):
    """An alias served by an ordered list of deployments, with retries, failover and breakers."""

    model_config = {"extra": "forbid"}

    deployments: list[str] = Field(min_length=1, description="provider:model, tried in order")
    max_attempts: int = Field(default=3, ge=1, le=10)
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    max_concurrent: int = Field(default=64, ge=1)
    failure_threshold: int = Field(default=5, ge=1)
    cooldown_seconds: float = Field(default=30.0, gt=0)


class LLMSettings(BaseModel):
    model_config = {"extra": "forbid"}

    routes: dict[str, RouteConfig] = Field(default_factory=dict, description="alias -> deployments")
    providers: dict[str, LLMProviderConfig] = Field(default_factory=_default_providers)
    aliases: dict[str, str] = Field(default_factory=dict, description="alias -> provider:model")
    offline_fallback: bool = Field(
        default=True,
        description="answer with the local provider when a provider has no key (labelled)",
    )
    catalogue: str | None = Field(
        default=None, description="model catalogue YAML; default configs/models.yaml"
    )


class MetricsSettings(BaseModel):
    """Prometheus metrics (docs/observability.md): on a cluster through Ray's metrics export."""

    model_config = {"extra": "forbid"}

    enabled: bool = True
    team_labels: bool = Field(
        default=False, description="label cost, token, call and execution counts by team"
    )
    host: str = "127.0.0.1"
    port: int | None = Field(
        default=None, ge=0, le=65535, description="without Ray: serve /metrics here"
    )
    sample_seconds: float = Field(
        default=15.0, gt=0, le=3600, description="how often queues and agents are sampled"
    )


class Settings(BaseSettings):
    """Everything configurable about one Linqra deployment."""

    model_config = SettingsConfigDict(
        env_prefix="LINQRA_", env_nested_delimiter="__", extra="forbid"
    )

    profile: Literal["embedded", "production"] = "embedded"
    data_dir: Path = Path(".linqra")
    store_url: str = Field(
        default="", description="sqlite:///PATH or mongodb://…; empty = sqlite in data_dir"
    )
    cache_url: str = Field(default="memory://", description="memory:// or redis://…")
    store_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="longest one document-store or cache call may take; after it the call "
        "fails with 503 store_unavailable instead of hanging",
    )
    store_connect_timeout_seconds: float = Field(
        default=3.0,
        gt=0,
        le=300,
        description="how long finding the store's or cache's server may take (MongoDB server "
        "selection, Redis connect): how fast an outage is seen",
    )
    http: HttpSettings = Field(default_factory=HttpSettings)
    ray: RaySettings = Field(default_factory=RaySettings)
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    egress: EgressPolicy = Field(default_factory=EgressPolicy)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    agents: AgentSettings = Field(default_factory=AgentSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    connections: Connections = Field(default_factory=ConnectionSettings, validate_default=True)

    @model_validator(mode="after")
    def _production_needs_auth(self) -> Settings:
        if self.profile == "production" and self.auth.mode == "header":
            raise ValueError(
                "auth.mode header trusts X-Team-Id from anyone and is for the embedded profile "
                "only: set LINQRA_AUTH__MODE=oidc and LINQRA_AUTH__OIDC__ISSUER=… (docs/security.md)"
            )
        if self.auth.mode == "oidc" and not self.auth.oidc.issuer:
            raise ValueError("auth.mode oidc needs auth.oidc.issuer (LINQRA_AUTH__OIDC__ISSUER)")
        return self

    @property
    def resolved_store_url(self) -> str:
        if self.store_url:
            return self.store_url
        return f"sqlite:///{(self.data_dir / 'linqra.db').resolve()}"

    @property
    def resolved_blob_dir(self) -> Path:
        return (self.knowledge.blob_dir or self.data_dir / "blobs").resolve()

    def portable(self) -> Settings:
        """A copy with paths made absolute, safe to ship to Ray workers in other directories."""
        data_dir = self.data_dir.resolve()
        copy = self.model_copy(update={"data_dir": data_dir})
        knowledge = copy.knowledge.model_copy(update={"blob_dir": copy.resolved_blob_dir})
        return copy.model_copy(
            update={"store_url": copy.resolved_store_url, "knowledge": knowledge}
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _config_path()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)


def _config_path() -> Path | None:
    explicit = os.environ.get("LINQRA_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"LINQRA_CONFIG points to a missing file: {path}")
        return path
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from YAML + environment, with ``overrides`` on top."""
    return Settings(**overrides)
