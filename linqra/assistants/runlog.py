"""The run event log: what one chat run said, in order, readable from any replica.

A chat run streams events (``run.created``, ``message.delta``, … ``run.completed``) while it
works. They go to a
per-run log so that a client that lost its connection — or reconnects to another gateway
replica — resumes with ``Last-Event-ID`` (:attr:`RunEvent.id`, ``"{run_id}:{seq}"``) and misses
nothing. Contract of :class:`RunLog`, the same in every adapter:

* ``append`` gives the run's events the sequence numbers 1, 2, 3 …; concurrent appends, from
  one process or many, never share one and leave no gap. ``data`` is a JSON object (a ``dict``
  of JSON values); anything else is a :class:`ValueError` and nothing is written. Readers get
  the data as JSON gives it back (tuples become lists).
* ``read(after=n)`` returns the events with ``seq > n``, oldest first, at most ``limit``. When
  there are none and ``wait > 0`` it blocks until one is appended or the run finishes (then it
  returns at once) or ``wait`` seconds pass (then ``[]``). A reader may start before the run's
  first event.
* ``finish`` ends the run's log: later appends raise :class:`~linqra.errors.Conflict`, waiting
  readers wake up, a read of a finished run never blocks. It is idempotent.
* A run's log is kept ``ttl_seconds`` after its last append or its finish, then it is gone (a
  read finds nothing, ``is_finished`` is ``False``): the log serves reconnects, the durable
  record of a chat is the conversation's messages.
* A server-backed log bounds every call by ``timeout_seconds`` (plus a read's ``wait``); an
  outage is a :class:`~linqra.errors.StoreError` (503 with ``retry_after``), never a hang.

Adapters: :class:`MemoryRunLog` (one process: the embedded default) and :class:`RedisRunLog`
(Redis Streams, shared by every replica); :func:`open_run_log` picks one by the cache URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from linqra.errors import Conflict
from linqra.store.base import (
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    require_team,
    unavailable,
)

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "MemoryRunLog",
    "RedisRunLog",
    "RunEvent",
    "RunLog",
    "open_run_log",
]

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 3600.0
"""How long a run's log outlives its last append or its finish."""


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One event of a run: its place in the run (``seq`` from 1), its name and its JSON data."""

    run_id: str
    seq: int
    event: str
    data: dict[str, Any]

    @property
    def id(self) -> str:
        """``"{run_id}:{seq}"``: the SSE event id a client sends back as ``Last-Event-ID``."""
        return f"{self.run_id}:{self.seq}"


@runtime_checkable
class RunLog(Protocol):
    """Per-run event logs (the contract is in the module docstring)."""

    async def append(
        self, team_id: str, run_id: str, event: str, data: Mapping[str, Any]
    ) -> RunEvent:
        """Add an event with the run's next ``seq``; :class:`Conflict` once the run finished."""

    async def read(
        self, team_id: str, run_id: str, after: int = 0, *, wait: float = 0.0, limit: int = 1000
    ) -> list[RunEvent]:
        """Events with ``seq > after`` (waiting up to ``wait`` seconds for the first)."""

    async def finish(self, team_id: str, run_id: str) -> None:
        """No more appends; waiting readers return."""

    async def is_finished(self, team_id: str, run_id: str) -> bool:
        """Whether ``finish`` was called (and the log has not expired)."""

    async def close(self) -> None:
        """Release connections (the memory log forgets everything)."""


def encode(event: str, data: Mapping[str, Any]) -> str:
    """``data`` as compact JSON text, or :class:`ValueError` (bad name, not a JSON object)."""
    if not isinstance(event, str) or not event:
        raise ValueError("an event needs a non-empty name")
    if not isinstance(data, Mapping):
        raise ValueError(f"event data must be a JSON object, not {type(data).__name__}")
    try:
        return json.dumps(dict(data), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"event data is not JSON: {exc}") from None


def _check(team_id: str, run_id: str, after: int = 0, limit: int = 1) -> None:
    require_team(team_id)
    if not isinstance(run_id, str) or not run_id:
        raise ValueError("run_id is required")
    if after < 0 or limit < 1:
        raise ValueError("after must be >= 0 and limit >= 1")


def _check_ttl(ttl_seconds: float) -> float:
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be > 0")
    return ttl_seconds


# -- in this process -----------------------------------------------------------------------------
@dataclass
class _Run:
    expires: float
    events: list[RunEvent] = field(default_factory=list)
    finished: bool = False
    readers: int = 0  # waiting now: the run is reset in place, not dropped, when it expires
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class MemoryRunLog:
    """:class:`RunLog` in this process (a dict of runs, expired lazily). Readers wait on an
    :class:`asyncio.Condition` that every append and finish notifies: no polling."""

    def __init__(
        self,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = _check_ttl(ttl_seconds)
        self._clock = clock
        self._runs: dict[tuple[str, str], _Run] = {}
        self._next_sweep = clock() + min(self.ttl, 60.0)

    def _run(self, team_id: str, run_id: str, *, create: bool) -> _Run | None:
        now = self._clock()
        if now >= self._next_sweep:
            self._next_sweep = now + min(self.ttl, 60.0)
            for key in [k for k, r in self._runs.items() if r.expires <= now and not r.readers]:
                del self._runs[key]
        run = self._runs.get((team_id, run_id))
        if run is not None and run.expires <= now:
            if run.readers:
                run.events, run.finished, run.expires = [], False, now + self.ttl
            else:
                del self._runs[(team_id, run_id)]
                run = None
        if run is None and create:
            run = self._runs[(team_id, run_id)] = _Run(now + self.ttl)
        return run

    async def append(
        self, team_id: str, run_id: str, event: str, data: Mapping[str, Any]
    ) -> RunEvent:
        _check(team_id, run_id)
        stored = json.loads(encode(event, data))
        run = self._run(team_id, run_id, create=True)
        assert run is not None
        if run.finished:
            raise Conflict(f"run {run_id!r} has finished: its event log takes no more events")
        # no await between reading the length and appending: concurrent appends cannot collide
        item = RunEvent(run_id, len(run.events) + 1, event, stored)
        run.events.append(item)
        run.expires = self._clock() + self.ttl
        async with run.changed:
            run.changed.notify_all()
        return item

    async def read(
        self, team_id: str, run_id: str, after: int = 0, *, wait: float = 0.0, limit: int = 1000
    ) -> list[RunEvent]:
        _check(team_id, run_id, after, limit)
        run = self._run(team_id, run_id, create=wait > 0)
        if run is None:
            return []
        if wait > 0 and len(run.events) <= after and not run.finished:
            run.readers += 1
            try:
                async with asyncio.timeout(wait), run.changed:
                    await run.changed.wait_for(lambda: len(run.events) > after or run.finished)
            except TimeoutError:
                return []
            finally:
                run.readers -= 1
        return run.events[after : after + limit]

    async def finish(self, team_id: str, run_id: str) -> None:
        _check(team_id, run_id)
        run = self._run(team_id, run_id, create=True)
        assert run is not None
        if not run.finished:
            run.finished = True
            run.expires = self._clock() + self.ttl
        async with run.changed:
            run.changed.notify_all()

    async def is_finished(self, team_id: str, run_id: str) -> bool:
        _check(team_id, run_id)
        run = self._run(team_id, run_id, create=False)
        return run is not None and run.finished

    def knows(self, team_id: str, run_id: str) -> bool:
        """Whether this log holds ``run_id`` (appended to and not expired)."""
        return self._run(team_id, run_id, create=False) is not None

    async def close(self) -> None:
        self._runs.clear()


# -- Redis Streams -------------------------------------------------------------------------------
# A run is one stream. Event n has the entry id "n-0"; finishing adds a marker "last-1" (after the
# last event, before any "last+1-0"), so a reader blocked in XREAD wakes up on it. The script
# makes "read the last id, add the next" one atomic step on the server.
_APPEND = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local seq = 1
if #last > 0 then
  local ms, n = string.match(last[1][1], '^(%d+)-(%d+)$')
  if n ~= '0' then return -1 end
  seq = tonumber(ms) + 1
end
redis.call('XADD', KEYS[1], seq .. '-0', 'e', ARGV[1], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return seq
"""
_FINISH = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local ms = '0'
if #last > 0 then
  local n
  ms, n = string.match(last[1][1], '^(%d+)-(%d+)$')
  if n ~= '0' then return 0 end
end
redis.call('XADD', KEYS[1], ms .. '-1', 'end', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_marker(last: list[Any]) -> bool:
    """Whether an ``XREVRANGE … COUNT 1`` answer is the finish marker."""
    return bool(last) and not _text(last[0][0]).endswith("-0")


def _field(fields: Mapping[Any, Any], name: str) -> str:
    return _text(fields[name.encode()] if name.encode() in fields else fields[name])


MAX_CONNECTIONS = 10_000
"""Connections one :class:`RedisRunLog` may open: a waiting reader holds one (a Redis server
takes 10,000 clients by default)."""


class RedisRunLog:
    """:class:`RunLog` on Redis Streams (key ``linqra:run:{team}:{run}``), shared by replicas.
    Waiting is ``XREAD BLOCK``: a reader wakes when the entry arrives, on whichever replica."""

    def __init__(
        self,
        url: str,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
        prefix: str = "linqra:run:",
    ) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        if timeout_seconds <= 0 or connect_timeout_seconds <= 0:
            raise ValueError("run log timeouts must be > 0")
        self.ttl = _check_ttl(ttl_seconds)
        self.timeout = timeout_seconds
        self.prefix = prefix
        # not a blocking pool: a reader blocked in XREAD holds its connection while it waits,
        # so the pool must hold one per stream a process follows at once (redis-py's default,
        # 100, made the 101st concurrent stream fail: B16)
        self.redis: Any = Redis.from_url(
            url,
            socket_connect_timeout=min(connect_timeout_seconds, timeout_seconds),
            retry=Retry(NoBackoff(), 1),  # one quick retry (a dropped idle connection)
            max_connections=MAX_CONNECTIONS,
        )
        self._append: Any = self.redis.register_script(_APPEND)
        self._finish: Any = self.redis.register_script(_FINISH)

    def _key(self, team_id: str, run_id: str) -> str:
        return f"{self.prefix}{team_id}:{run_id}"

    @property
    def _ttl_ms(self) -> int:
        return max(1, math.ceil(self.ttl * 1000))

    @asynccontextmanager
    async def _guard(self, what: str, extra_seconds: float = 0.0) -> AsyncIterator[None]:
        """Bound one call in time; Redis outages become StoreError (never naming the URL)."""
        from redis import exceptions as redis_errors

        try:
            async with asyncio.timeout(self.timeout + extra_seconds):  # builtin TimeoutError
                yield
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            log.warning("redis run log %s failed: %s: %s", what, type(exc).__name__, exc)
            raise unavailable(
                f"the run event log is unreachable ({what}: Redis {type(exc).__name__})"
            ) from None

    async def append(
        self, team_id: str, run_id: str, event: str, data: Mapping[str, Any]
    ) -> RunEvent:
        _check(team_id, run_id)
        body = encode(event, data)
        async with self._guard("append"):
            seq = int(
                await self._append(
                    keys=[self._key(team_id, run_id)], args=[event, body, self._ttl_ms]
                )
            )
        if seq < 0:
            raise Conflict(f"run {run_id!r} has finished: its event log takes no more events")
        return RunEvent(run_id, seq, event, json.loads(body))

    async def read(
        self, team_id: str, run_id: str, after: int = 0, *, wait: float = 0.0, limit: int = 1000
    ) -> list[RunEvent]:
        _check(team_id, run_id, after, limit)
        key = self._key(team_id, run_id)
        async with self._guard("read"), self.redis.pipeline(transaction=False) as pipe:
            pipe.xrange(key, f"{after}-1", "+", count=limit + 1)
            pipe.xrevrange(key, "+", "-", count=1)
            entries, last = await pipe.execute()
        events, finished = self._events(run_id, entries, after, limit)
        finished = finished or _is_marker(last)  # also when ``after`` lies beyond the end
        if events or finished or wait <= 0:
            return events
        # Nothing new yet: block from the stream's last entry (not from ``after``, which may lie
        # beyond it), so that whatever is added next — an event or the finish marker — wakes us.
        cursor = _text(last[0][0]) if last else "0-0"
        deadline = asyncio.get_running_loop().time() + wait
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            async with self._guard("read", extra_seconds=left):
                found = await self.redis.xread(
                    {key: cursor}, count=limit, block=max(1, math.ceil(left * 1000))
                )
            if not found:
                return []
            entries = found[0][1]
            cursor = _text(entries[-1][0])
            events, finished = self._events(run_id, entries, after, limit)
            if events or finished:
                return events
        return []

    @staticmethod
    def _events(
        run_id: str, entries: list[Any], after: int, limit: int
    ) -> tuple[list[RunEvent], bool]:
        events: list[RunEvent] = []
        finished = False
        for entry_id, fields in entries:
            seq, kind = _text(entry_id).split("-")
            if kind != "0":
                finished = True
            elif int(seq) > after and len(events) < limit:
                data = json.loads(_field(fields, "d"))
                events.append(RunEvent(run_id, int(seq), _field(fields, "e"), data))
        return events, finished

    async def finish(self, team_id: str, run_id: str) -> None:
        _check(team_id, run_id)
        async with self._guard("finish"):
            await self._finish(keys=[self._key(team_id, run_id)], args=[self._ttl_ms])

    async def is_finished(self, team_id: str, run_id: str) -> bool:
        _check(team_id, run_id)
        async with self._guard("is_finished"):
            last = await self.redis.xrevrange(self._key(team_id, run_id), "+", "-", count=1)
        return _is_marker(last)

    async def close(self) -> None:
        await self.redis.aclose()


# -- choosing one --------------------------------------------------------------------------------
def _memory(url: str, timeout: float, connect_timeout: float, ttl: float) -> RunLog:
    return MemoryRunLog(ttl_seconds=ttl)


def _redis(url: str, timeout: float, connect_timeout: float, ttl: float) -> RunLog:
    return RedisRunLog(
        url, ttl_seconds=ttl, timeout_seconds=timeout, connect_timeout_seconds=connect_timeout
    )


_ADAPTERS: dict[str, Callable[[str, float, float, float], RunLog]] = {
    "memory": _memory,
    "redis": _redis,
    "rediss": _redis,
}


def open_run_log(
    cache_url: str,
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
    connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
) -> RunLog:
    """The run log beside the cache at ``cache_url``: ``memory://`` (this process only) or
    ``redis://HOST:PORT/DB`` (every replica). Settings: ``store_timeout_seconds``,
    ``store_connect_timeout_seconds``."""
    scheme = cache_url.split(":", 1)[0]
    try:
        factory = _ADAPTERS[scheme]
    except KeyError:
        raise ValueError(
            f"no run log for {scheme!r}; known: {', '.join(sorted(_ADAPTERS))}"
        ) from None
    return factory(cache_url, timeout_seconds, connect_timeout_seconds, _check_ttl(ttl_seconds))
