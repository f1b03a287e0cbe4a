"""What the ``limits`` library does not do, for :mod:`linqra.ratelimit`: the wait until a *cost*
fits (its window stats answer when one more unit fits), and several hits in one Redis round
trip (it sends each hit, and each window read, on its own).

Both work on the library's own data: its sliding-window model and counters, its Redis keys and
its Lua scripts (sent by SHA in one pipeline). Tests run the two paths side by side, so a
library change to either is seen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from limits.aio.storage import RedisStorage

    from linqra.ratelimit import Hit

__all__ = ["parse_window", "pipelined", "window_state"]


async def pipelined(storage: RedisStorage, hits: Sequence[Hit]) -> list[tuple[Any, Any]]:
    """Each hit's spend and window read, as the library's ``acquire_sliding_window`` and
    ``sliding_window`` scripts on the library's keys, sent as one pipeline. By SHA: a
    script the server lost (a restart) is loaded and only the commands it refused are sent
    again (a refused command did nothing). Not through redis-py's ``Script`` objects, which
    ask ``SCRIPT EXISTS`` before every pipeline: a second round trip."""
    from redis.exceptions import NoScriptError

    bridge: Any = storage.bridge
    acquire, window = bridge.lua_acquire_sliding_window, bridge.lua_sliding_window

    commands: list[tuple[Any, tuple[Any, ...]]] = []
    for hit in hits:
        item = hit.rule.item
        name = item.key_for(hit.rule.name, hit.digest)
        keys = (
            bridge.prefixed_key(storage._previous_window_key(name)),
            bridge.prefixed_key(storage._current_window_key(name)),
        )
        commands.append((acquire, (*keys, item.amount, item.get_expiry(), hit.cost)))
        commands.append((window, (*keys, item.get_expiry())))
    replies: list[Any] = [None] * len(commands)
    todo = list(range(len(commands)))
    for _ in range(2):
        pipe = bridge.get_connection().pipeline(transaction=False)
        for i in todo:
            script, args = commands[i]
            pipe.evalsha(script.sha, 2, *args)
        answers = await pipe.execute(raise_on_error=False)
        lost = []
        for i, answer in zip(todo, answers, strict=True):
            if isinstance(answer, NoScriptError):
                lost.append(i)
            elif isinstance(answer, Exception):
                raise answer
            else:
                replies[i] = answer
        if not lost:
            return list(zip(replies[0::2], replies[1::2], strict=True))
        for script in {id(commands[i][0]): commands[i][0] for i in lost}.values():
            script.sha = await bridge.get_connection().script_load(script.script)
        todo = lost
    raise OSError("the rate-limit cache keeps losing its scripts")


def parse_window(reply: Any) -> tuple[int, float, int, float]:
    """The ``sliding_window`` script's reply as the library's storage parses it."""
    if not reply:
        return 0, 0.0, 0, 0.0
    return (
        int(reply[0] or 0),
        max(0, float(reply[1] or 0)) / 1000,
        int(reply[2] or 0),
        max(0, float(reply[3] or 0)) / 1000,
    )


def window_state(
    limit: int,
    expiry: float,
    cost: int,
    previous: int,
    previous_ttl: float,
    current: int,
    current_ttl: float,
) -> tuple[int, float, float | None]:
    """(remaining, seconds until the whole limit is back, seconds until ``cost`` fits).

    Written here because the library's ``get_window_stats`` answers when *one* more unit fits,
    which is the wrong ``Retry-After`` for a token limit. Same model as its storages: the count
    is ``floor(previous * previous_ttl / expiry) + current``; the current window becomes the
    previous one when its TTL falls to ``expiry``, and the previous one's weight falls to 0 with
    its TTL. Assumes no other hit in the meantime; the wait is ``None`` when ``cost`` > ``limit``.
    """
    used = (math.floor(previous * previous_ttl / expiry) if previous else 0) + current
    remaining = max(0, limit - used)
    reset_in = _wait(limit, expiry, limit, previous, previous_ttl, current, current_ttl)
    wait = (
        None
        if cost > limit
        else _wait(limit, expiry, cost, previous, previous_ttl, current, current_ttl)
    )
    return remaining, reset_in, wait


def _wait(
    limit: int,
    expiry: float,
    cost: int,
    previous: int,
    previous_ttl: float,
    current: int,
    current_ttl: float,
) -> float:
    """Seconds until ``cost`` (≤ ``limit``) fits."""
    shift = max(0.0, current_ttl - expiry) if current else math.inf
    room = limit - cost - current  # what the previous window's floored weight may be
    if room >= 0:
        wait = 0.0 if not previous else max(0.0, previous_ttl - (room + 1) * expiry / previous)
        if wait < shift:
            return _round_up(wait)
    # after the shift the current count is the previous one, its weight falling to 0
    return _round_up(shift + max(0.0, expiry - (limit - cost + 1) * expiry / current))


def _round_up(seconds: float) -> float:
    """To the next millisecond, plus one: the storages count time in milliseconds."""
    return 0.0 if seconds <= 0 else math.ceil(seconds * 1000 + 1) / 1000
