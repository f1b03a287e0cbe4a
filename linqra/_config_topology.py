"""The ``connections`` section of the settings (:mod:`linqra.config`): how many connections
*each process* opens to each backing server, kept in its own module so ``config.py`` stays under
the project's module size.

Every Linqra process — a gateway replica, a runner, the supervisor, an I/O worker, an agent
actor — opens its own clients, so a server sees these numbers once per process:
``per-process size * processes <= the server's connection limit`` (docs/operations.md,
"Production topology").

MongoDB's pool size may also be written in ``store_url`` (``maxPoolSize``, ``minPoolSize``, as
MongoDB's drivers read them). One number has one place: a size in the URL is adopted here unless
this section sets it too, and the two disagreeing is an error naming both.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import AfterValidator, BaseModel, Field, ValidationInfo, model_validator

__all__ = [
    "ConnectionSettings",
    "Connections",
    "KafkaClientSettings",
    "MilvusClientSettings",
    "MongoPoolSettings",
    "RedisPoolSettings",
]

MAX_POOL = 10_000


class MongoPoolSettings(BaseModel):
    """``pymongo``'s connection pool of the document store (one client per process)."""

    model_config = {"extra": "forbid"}

    max_pool_size: int = Field(
        default=100,
        ge=1,
        le=MAX_POOL,
        description="most connections per server of one process (maxPoolSize); a call past "
        "them waits for a free one, within store_timeout_seconds",
    )
    min_pool_size: int = Field(
        default=0, ge=0, le=MAX_POOL, description="connections kept open while idle (minPoolSize)"
    )

    @model_validator(mode="after")
    def _min_within_max(self) -> MongoPoolSettings:
        if self.min_pool_size > self.max_pool_size:
            raise ValueError(
                f"connections.mongodb.min_pool_size ({self.min_pool_size}) is larger than "
                f"connections.mongodb.max_pool_size ({self.max_pool_size})"
            )
        return self


class RedisPoolSettings(BaseModel):
    """The ``redis`` connection pools of one process: the cache's, the rate limiter's and the
    Redis Streams event bus's (each its own pool of at most this many)."""

    model_config = {"extra": "forbid"}

    max_connections: int = Field(
        default=64,
        ge=1,
        le=MAX_POOL,
        description="connections per pool; the cache and the rate limiter wait for a free one "
        "(within their timeouts), the event bus holds one per blocked subscription read",
    )


class KafkaClientSettings(BaseModel):
    """``aiokafka`` options of the Kafka event bus. A process opens one producer, one reader of
    the delivery-count topics and one consumer per subscription, each one connection per
    broker it talks to: Kafka has no pool to size."""

    model_config = {"extra": "forbid"}

    linger_ms: int = Field(
        default=0, ge=0, le=60_000, description="a producer waits this long to batch sends"
    )
    max_batch_bytes: int = Field(
        default=16_384, ge=1024, le=64 * 1024 * 1024, description="a producer's batch per partition"
    )
    session_timeout_ms: int = Field(
        default=10_000,
        ge=1000,
        le=300_000,
        description="a consumer silent this long leaves its group (its partitions move on); "
        "joining a group takes about half of it",
    )
    fetch_max_wait_ms: int = Field(
        default=20,
        ge=0,
        le=10_000,
        description="how long the broker may hold a fetch open waiting for events: the floor "
        "of an event's latency",
    )


class MilvusClientSettings(BaseModel):
    """``pymilvus``: one ``MilvusClient`` per process, one gRPC channel (calls multiplexed on
    it). Its calls are synchronous and run in threads of the store's own; this bounds them."""

    model_config = {"extra": "forbid"}

    max_concurrent_calls: int = Field(
        default=16, ge=1, le=1024, description="Milvus calls one process has in flight at once"
    )


class ConnectionSettings(BaseModel):
    """Client pools and options per process, one section per backing server."""

    model_config = {"extra": "forbid"}

    mongodb: MongoPoolSettings = Field(default_factory=MongoPoolSettings)
    redis: RedisPoolSettings = Field(default_factory=RedisPoolSettings)
    kafka: KafkaClientSettings = Field(default_factory=KafkaClientSettings)
    milvus: MilvusClientSettings = Field(default_factory=MilvusClientSettings)


_URL_KEYS = {"maxpoolsize": "max_pool_size", "minpoolsize": "min_pool_size"}


def _agree_with_store_url(value: ConnectionSettings, info: ValidationInfo) -> ConnectionSettings:
    """Adopt ``maxPoolSize``/``minPoolSize`` of a ``mongodb://`` ``store_url`` (so the section
    always holds the sizes in use); a size set in both places must be the same."""
    url = str(info.data.get("store_url") or "")
    if not url.startswith("mongodb"):
        return value
    pool = value.mongodb
    adopted: dict[str, Any] = {}
    for key, raw in parse_qsl(urlsplit(url).query):
        field = _URL_KEYS.get(key.lower())
        if field is None:
            continue
        try:
            size = int(raw)
        except ValueError:
            raise ValueError(f"store_url has {key}={raw!r}: not a whole number") from None
        if field in pool.model_fields_set and getattr(pool, field) != size:
            raise ValueError(
                f"store_url has {key}={size} but connections.mongodb.{field} is "
                f"{getattr(pool, field)}: set the pool size in one place"
            )
        adopted[field] = size
    if not adopted:
        return value
    merged = MongoPoolSettings.model_validate({**pool.model_dump(), **adopted})
    return value.model_copy(update={"mongodb": merged})


Connections = Annotated[ConnectionSettings, AfterValidator(_agree_with_store_url)]
"""The type of ``Settings.connections``: it reads ``store_url``, so it comes after it."""
