"""Rate limits for the gateway, counted in the cache: cluster-wide in Redis, per process in memory.

The counting is the maintained ``limits`` library's (its *sliding window counter* strategy and its
Redis and memory storages); this module names the rules, bounds every call, decides what an
outage means, and turns the library's window into what a gateway answers: ``429`` with
``Retry-After`` and ``X-RateLimit-Limit/Remaining/Reset``::

    limiter = RateLimiter.open("redis://127.0.0.1:6379/0", connect_timeout=1.0)
    rules = RateLimitRules.from_settings(settings.rate_limits)
    decision = await limiter.hit(rules.team, team_id)             # one request of the team
    decision = await limiter.hit(rules.llm_tokens, team_id, cost=tokens)
    decision.raise_if_denied()        # RateLimited (429) carrying retry_after and headers()
    key, team = await limiter.hit_many([Hit(rules.api_key, key_id), Hit(rules.team, team_id)])

Contract:

* ``redis://`` (``rediss://``) counts in one redis-server: every process and gateway replica that
  uses the same server shares the limits (N allowed in total, not N each). ``memory://`` counts
  in the process that calls, so with several replicas a limit of N allows N per replica: it is
  for the embedded profile only (:attr:`RateLimiter.cluster_wide` says which).
* A rule is ``"<amount>/<period>"`` in the library's notation (``600/minute``, ``10 per second``,
  ``5000/2 hours``), one limit per rule, amount ≥ 1; anything else is a
  :class:`~linqra.errors.ValidationError` naming the rule.
* The window slides: the previous period's count weighs in proportion to the time it still
  overlaps, so a client cannot spend the limit twice around a period boundary. A denied hit
  counts nothing (a refused 50,000-token request does not use up the team's tokens).
* ``cost`` is what the hit spends (tokens for a token limit); a cost above the rule's amount
  can never be allowed (``retry_after_seconds`` is ``None``). Keys are hashed before they reach
  the cache, so a raw credential passed by mistake is not stored; pass ids, not secrets.
* Every decision ends within ``timeout`` seconds. When the cache is unreachable or stuck
  (connection refused, timeout, any Redis error), the rule decides: ``fail_open`` rules allow
  (the decision says ``degraded``), the others raise :class:`~linqra.errors.StoreError` (503 with
  ``Retry-After``). After a failure the cache is left alone for ``outage_retry`` seconds (a
  circuit breaker), so an outage costs one timeout, not one per request. The start and the end
  of an outage are logged once each.

* :meth:`RateLimiter.hit_many` makes several decisions in one round trip to Redis (a pipeline
  of the library's own Lua scripts, each hit's spend and its window read back together): what a
  gateway request with an API key needs (the key's limit and the team's) costs one wait, not
  two or three. The hits are independent, as if made concurrently: a denied one spends nothing,
  the others are spent.

For failed-authentication limits, :meth:`RateLimiter.peek` before verifying a credential
(refuse an address that is over its limit) and :meth:`RateLimiter.hit` after a failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import limits
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from linqra._limits_ext import parse_window, pipelined, window_state
from linqra.errors import RateLimited, StoreError, ValidationError
from linqra.resilience import CircuitBreaker

if TYPE_CHECKING:
    from linqra.config import RateLimitSettings, Settings

__all__ = [
    "Decision",
    "Hit",
    "RateLimitRules",
    "RateLimiter",
    "Rule",
    "TeamTokenLimit",
    "parse_rate",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 1.0
DEFAULT_CONNECT_TIMEOUT_SECONDS = 1.0
DEFAULT_OUTAGE_RETRY_SECONDS = 2.0
_KEY_PREFIX = "linqra:rl"


def parse_rate(spec: str, *, setting: str) -> limits.RateLimitItem:
    """``"600/minute"`` → the library's limit item; :class:`ValidationError` naming ``setting``."""
    if not isinstance(spec, str):
        raise ValidationError(f"{setting}: a rate is text such as '600/minute'", field=setting)
    try:
        items = limits.parse_many(spec)
    except ValueError:
        raise ValidationError(
            f"{setting}: {spec!r} is not a rate; write '<amount>/<period>' such as '600/minute', "
            "'10 per second' or '5000/2 hours'",
            field=setting,
        ) from None
    if len(items) != 1:
        raise ValidationError(f"{setting}: one limit per rule, got {spec!r}", field=setting)
    if items[0].amount < 1:
        raise ValidationError(
            f"{setting}: the amount must be at least 1 in {spec!r}", field=setting
        )
    return items[0]


@dataclass(frozen=True, slots=True)
class Rule:
    """A named limit. ``fail_open`` says what a cache outage means: allow (True) or 503 (False)."""

    name: str
    rate: str
    fail_open: bool = True
    item: limits.RateLimitItem = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValidationError("a rate-limit rule needs a name", field="name")
        object.__setattr__(self, "item", parse_rate(self.rate, setting=self.name))

    @property
    def amount(self) -> int:
        return int(self.item.amount)

    @property
    def window_seconds(self) -> int:
        return int(self.item.get_expiry())


@dataclass(frozen=True, slots=True)
class Hit:
    """One decision of :meth:`RateLimiter.hit_many`: spend ``cost`` of ``rule`` for ``key``."""

    rule: Rule
    key: str
    cost: int = 1

    @property
    def digest(self) -> str:
        """The key as the cache sees it (hashed: a raw credential passed by mistake is not
        stored)."""
        return _digest(self.key)


@dataclass(frozen=True, slots=True)
class RateLimitRules:
    """The gateway's rules, from the ``rate_limits`` settings."""

    api_key: Rule  # requests per API key (key the API key's id)
    team: Rule  # requests per team
    widget: Rule  # requests per public widget key and client IP (key "<key id>|<ip>")
    llm_tokens: Rule  # LLM tokens per team (cost = tokens)
    failed_auth: Rule  # failed authentications per client IP

    @classmethod
    def from_settings(cls, settings: RateLimitSettings) -> RateLimitRules:
        closed = set(settings.fail_closed)
        rules = {
            name: Rule(name, getattr(settings, name), fail_open=name not in closed)
            for name in ("api_key", "team", "widget", "llm_tokens", "failed_auth")
        }
        return cls(**rules)


@dataclass(frozen=True, slots=True)
class Decision:
    """What one hit decided, with what the response headers need.

    ``reset_at`` (Unix seconds) is when the whole limit is available again; ``retry_after_seconds``
    is 0 when allowed, the wait until the same ``cost`` would fit when denied, and ``None`` when it
    never can (cost above the limit). ``degraded``: the cache was unreachable and the rule fails
    open, so nothing was counted (``remaining`` is then the whole limit).
    """

    allowed: bool
    rule: str
    limit: int
    remaining: int
    reset_at: float
    retry_after_seconds: float | None
    degraded: bool = False

    def headers(self) -> dict[str, str]:
        """``X-RateLimit-Limit``, ``-Remaining``, ``-Reset`` (Unix seconds), and ``Retry-After``
        (whole seconds, at least 1) on a denial that can be retried."""
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }
        if not self.allowed and self.retry_after_seconds is not None:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after_seconds)))
        return out

    def raise_if_denied(self) -> None:
        """Raise :class:`RateLimited` (429) with ``retry_after`` and ``headers`` when denied."""
        if self.allowed:
            return
        if self.retry_after_seconds is None:
            message = f"rate limit {self.rule!r}: the request costs more than the limit allows"
        else:
            message = (
                f"rate limit {self.rule!r} exceeded: retry in {self.retry_after_seconds:.0f} s"
            )
        err = RateLimited(message)
        err.retry_after = self.retry_after_seconds  # type: ignore[attr-defined]
        err.headers = self.headers()  # type: ignore[attr-defined]
        raise err


class RateLimiter:
    """Decides hits of :class:`Rule` s against counters in a ``limits`` storage."""

    def __init__(
        self,
        storage: RedisStorage | MemoryStorage,
        *,
        cluster_wide: bool,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        outage_retry: float = DEFAULT_OUTAGE_RETRY_SECONDS,
        errors: tuple[type[BaseException], ...] = (OSError,),
        on_close: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        pool: Any = None,
    ) -> None:
        if timeout <= 0 or outage_retry <= 0:
            raise ValueError("rate-limit timeouts must be > 0")
        self.pool = pool
        """The Redis connection pool of a cluster-wide limiter (``None`` in memory)."""
        self._storage = storage
        self._strategy = SlidingWindowCounterRateLimiter(storage)
        self.cluster_wide = cluster_wide
        self.timeout = timeout
        self.outage_retry = outage_retry
        self._errors = errors
        self._on_close = on_close
        self._clock, self._wall = clock, wall_clock
        self._breaker = CircuitBreaker("rate-limits", 1, outage_retry, clock)
        self._outage_since: float | None = None

    @classmethod
    def open(
        cls,
        cache_url: str,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        outage_retry: float = DEFAULT_OUTAGE_RETRY_SECONDS,
        max_connections: int = 64,
    ) -> RateLimiter:
        """The limiter for ``cache_url``: ``memory://`` (this process) or ``redis://…`` (shared)."""
        scheme = cache_url.split(":", 1)[0]
        if scheme == "memory":
            return cls(
                MemoryStorage(), cluster_wide=False, timeout=timeout, outage_retry=outage_retry
            )
        if scheme not in ("redis", "rediss"):
            raise ValidationError(
                f"rate limits need cache_url memory:// or redis://…, not {scheme}://",
                field="cache_url",
            )
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError("rate-limit timeouts must be > 0")
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        # A blocking pool waits for a free connection (within the timeout) instead of failing
        # past max_connections as redis-py's default asyncio pool does.
        pool = aioredis.BlockingConnectionPool.from_url(
            cache_url,
            max_connections=max_connections,
            timeout=timeout,
            socket_connect_timeout=min(connect_timeout, timeout),
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 1),  # one quick retry of a dropped idle connection
        )
        options: dict[str, Any] = {"connection_pool": pool}
        storage = RedisStorage(
            "async+" + cache_url, implementation="redispy", key_prefix=_KEY_PREFIX, **options
        )
        return cls(
            storage,
            cluster_wide=True,
            timeout=timeout,
            outage_retry=outage_retry,
            errors=(RedisError, OSError),
            on_close=pool.aclose,
            pool=pool,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        """The limiter for ``settings.cache_url`` with the ``rate_limits`` bounds."""
        bounds = settings.rate_limits
        return cls.open(
            settings.cache_url,
            connect_timeout=min(settings.store_connect_timeout_seconds, bounds.timeout_seconds),
            timeout=bounds.timeout_seconds,
            outage_retry=bounds.outage_retry_seconds,
            max_connections=settings.connections.redis.max_connections,
        )

    async def hit(self, rule: Rule, key: str, cost: int = 1) -> Decision:
        """Spend ``cost`` of ``rule`` for ``key`` if it fits; a denied hit spends nothing."""
        if isinstance(self._storage, RedisStorage):  # the spend and the read-back in one trip
            return (await self.hit_many([Hit(rule, key, cost)]))[0]
        return await self._decide(rule, key, cost, spend=True)

    async def peek(self, rule: Rule, key: str, cost: int = 1) -> Decision:
        """Whether ``cost`` would fit now, spending nothing."""
        return await self._decide(rule, key, cost, spend=False)

    async def hit_many(self, hits: Sequence[Hit]) -> list[Decision]:
        """Every hit decided, in order, each as :meth:`hit` decides it, in one round trip to
        Redis (in memory, one after another). Independent: a denied hit spends nothing of its
        own rule, the others are spent. On an outage each rule fails open or closed as its own
        (the first fail-closed one raises)."""
        for hit in hits:
            _check(hit.key, hit.cost)
        if not isinstance(self._storage, RedisStorage):
            return [await self._decide(h.rule, h.key, h.cost, spend=True) for h in hits]
        if not self._breaker.allow():
            return [self._outage(h.rule) for h in hits]
        try:
            async with asyncio.timeout(self.timeout):
                replies = await pipelined(self._storage, hits)
        except self._errors as exc:
            self._failed(exc)
            return [self._outage(h.rule) for h in hits]
        except BaseException:
            self._breaker.trial_in_flight = False
            raise
        self._recovered()
        return [
            self._decision(hit.rule, hit.cost, bool(allowed), parse_window(window))
            for hit, (allowed, window) in zip(hits, replies, strict=True)
        ]

    async def clear(self, rule: Rule, key: str) -> None:
        """Forget what ``key`` spent of ``rule`` (an administrator's reset)."""
        async with self._guard():
            await self._strategy.clear(rule.item, rule.name, _digest(key))

    async def check(self, timeout: float) -> None:
        """Return if the cache answered within ``timeout`` seconds, else raise StoreError."""
        async with self._guard(timeout):
            if not await self._storage.check():
                raise OSError("the rate-limit cache did not answer")

    async def close(self) -> None:
        if self._on_close is not None:
            await self._on_close()

    # -- the decision ---------------------------------------------------------------------------
    async def _decide(self, rule: Rule, key: str, cost: int, *, spend: bool) -> Decision:
        _check(key, cost)
        if not self._breaker.allow():
            return self._outage(rule)
        item, ident = rule.item, _digest(key)
        try:
            async with asyncio.timeout(self.timeout):
                allowed = None
                if spend:
                    allowed = await self._strategy.hit(item, rule.name, ident, cost=cost)
                window = await self._storage.get_sliding_window(
                    item.key_for(rule.name, ident), item.get_expiry()
                )
        except self._errors as exc:  # the timeout included (TimeoutError is an OSError)
            self._failed(exc)
            return self._outage(rule)
        except BaseException:
            self._breaker.trial_in_flight = False  # cancelled: the next call may try again
            raise
        self._recovered()
        return self._decision(rule, cost, allowed, window)

    def _decision(
        self, rule: Rule, cost: int, allowed: bool | None, window: tuple[int, float, int, float]
    ) -> Decision:
        """``allowed`` is what the spend said (``None`` for a peek: would it fit now?)."""
        remaining, reset_in, wait = window_state(rule.amount, rule.item.get_expiry(), cost, *window)
        if allowed is None:
            allowed = wait == 0.0
        return Decision(
            allowed=allowed,
            rule=rule.name,
            limit=rule.amount,
            remaining=remaining,
            reset_at=self._wall() + reset_in,
            retry_after_seconds=0.0 if allowed else wait,
        )

    def _outage(self, rule: Rule) -> Decision:
        if not rule.fail_open:
            raise StoreError(
                f"rate limit {rule.name!r} cannot be checked: the cache is unreachable",
                retry_after=self.outage_retry,
            )
        return Decision(
            allowed=True,
            rule=rule.name,
            limit=rule.amount,
            remaining=rule.amount,
            reset_at=self._wall(),
            retry_after_seconds=0.0,
            degraded=True,
        )

    def _failed(self, exc: BaseException) -> None:
        self._breaker.record_failure()
        if self._outage_since is None:
            self._outage_since = self._clock()
            log.warning(
                "rate limits: the cache is unreachable (%s); fail-open rules allow, the others "
                "answer 503, until it is back",
                type(exc).__name__,
            )

    def _recovered(self) -> None:
        self._breaker.record_success()
        if self._outage_since is not None:
            log.warning(
                "rate limits: the cache is reachable again after %.1f s",
                self._clock() - self._outage_since,
            )
            self._outage_since = None

    @asynccontextmanager
    async def _guard(self, timeout: float | None = None) -> AsyncIterator[None]:
        """Bounds an administrative call; an outage becomes StoreError (503)."""
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                yield
        except self._errors as exc:
            raise StoreError(
                f"the rate-limit cache is unreachable ({type(exc).__name__})",
                retry_after=self.outage_retry,
            ) from None


def _check(key: str, cost: int) -> None:
    if not isinstance(key, str) or not key:
        raise ValidationError("a rate-limit key must be non-empty text", field="key")
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
        raise ValidationError("cost must be a whole number ≥ 1", field="cost")


def _digest(key: str) -> str:
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


@dataclass(frozen=True, slots=True)
class TeamTokenLimit:
    """The ``llm_tokens`` rule as the LLM service's ``token_limit``: each call spends its prompt
    and its whole output allowance up front (what a call can cost, as budgets reserve), or is
    refused with 429 before the provider is asked."""

    limiter: RateLimiter
    rule: Rule

    async def __call__(self, team_id: str, tokens: int) -> None:
        decision = await self.limiter.hit(self.rule, team_id, cost=max(1, tokens))
        if not decision.allowed and decision.retry_after_seconds is None:  # never fits: 400
            raise ValidationError(
                f"this call may use {tokens} tokens (prompt and max_tokens), more than the "
                f"team's limit of {decision.limit} per {self.rule.window_seconds} s: lower "
                "max_tokens",
                field="max_tokens",
            )
        decision.raise_if_denied()
