"""B13 — what a rate-limit decision costs (issue 11; ``python -m benchmarks.auth b13``).

``RateLimiter.hit`` (``linqra/ratelimit.py``) against a redis-server this starts, sequential and
from 8 concurrent tasks (keys spread over 1,000 API-key ids): p50/p99 per decision and
decisions/s; the same against ``memory://`` as the baseline, one Redis ``PING`` for scale, and
two spawned processes sharing one 1,000/hour limit through Redis and through ``memory://``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import platform
import subprocess
import time
import uuid
from typing import Any

import limits

from benchmarks._support import percentile
from linqra.ratelimit import RateLimiter, Rule

CONCURRENCY = 8


def _summary(latencies_ms: list[float], elapsed: float) -> dict[str, Any]:
    return {
        "decisions": len(latencies_ms),
        "p50_ms": round(percentile(latencies_ms, 0.5), 3),
        "p99_ms": round(percentile(latencies_ms, 0.99), 3),
        "max_ms": round(max(latencies_ms, default=0.0), 3),
        "decisions_per_s": round(len(latencies_ms) / elapsed),
    }


async def _decisions(limiter: RateLimiter, hits: int, tasks: int) -> dict[str, Any]:
    rule = Rule("api_key", "600/minute")
    run = uuid.uuid4().hex[:8]
    latencies: list[float] = []
    allowed = 0

    async def worker(offset: int) -> None:
        nonlocal allowed
        for i in range(offset, hits, tasks):
            t0 = time.perf_counter()
            decision = await limiter.hit(rule, f"{run}-key-{i % 1000}")
            latencies.append((time.perf_counter() - t0) * 1000)
            allowed += decision.allowed

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(tasks)))
    out = _summary(latencies, time.perf_counter() - t0)
    out["allowed"] = allowed
    return out


async def _backend(url: str, hits: int) -> dict[str, Any]:
    limiter = RateLimiter.open(url)
    await _decisions(limiter, 400, CONCURRENCY)  # warm-up: connections, scripts loaded
    out = {
        "sequential": await _decisions(limiter, hits, 1),
        f"concurrent_{CONCURRENCY}": await _decisions(limiter, hits, CONCURRENCY),
    }
    await limiter.close()
    return out


async def _ping(url: str, count: int = 2000) -> dict[str, Any]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    await client.ping()
    latencies = []
    t0 = time.perf_counter()
    for _ in range(count):
        start = time.perf_counter()
        await client.ping()
        latencies.append((time.perf_counter() - start) * 1000)
    await client.aclose()
    return _summary(latencies, time.perf_counter() - t0)


def _hammer(url: str, key: str, attempts: int, barrier: Any, results: Any) -> None:
    """In a child process: ``attempts`` hits of one 1,000/hour limit from 4 tasks."""

    async def run() -> int:
        limiter = RateLimiter.open(url, timeout=10.0)
        rule = Rule("team", "1000/hour")
        await limiter.hit(Rule("warm-up", "1000/hour"), key)
        barrier.wait(60)

        async def task(n: int) -> int:
            return sum([(await limiter.hit(rule, key)).allowed for _ in range(n)])

        allowed = sum(await asyncio.gather(*(task(attempts // 4) for _ in range(4))))
        await limiter.close()
        return allowed

    results.put(asyncio.run(run()))


def _two_processes(url: str, attempts: int = 1000) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    barrier, results, key = ctx.Barrier(2), ctx.Queue(), uuid.uuid4().hex
    procs = [
        ctx.Process(target=_hammer, args=(url, key, attempts, barrier, results)) for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    counts = [results.get(timeout=300) for _ in procs]
    for proc in procs:
        proc.join(60)
    return {
        "processes": 2,
        "limit": 1000,
        "attempts": 2 * attempts,
        "allowed_total": sum(counts),
        "allowed_per_process": sorted(counts),
    }


def b13(hits: int = 5000) -> dict[str, Any]:
    """B13 in one run (the module docstring): ``hits`` decisions a way."""
    from linqra.testing.servers import redis_server

    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    out: dict[str, Any] = {
        "hits": hits,
        "strategy": "sliding window counter (limits), 2 Redis round trips per decision",
        "limits_version": limits.__version__,
        "redis_server": version.stdout.split()[2].removeprefix("v=")
        if version.returncode == 0
        else None,
        "python": platform.python_version(),
        "load_average_1min_before": round(os.getloadavg()[0], 2),
    }
    with redis_server() as url:
        out["redis_ping"] = asyncio.run(_ping(url))
        out["redis"] = asyncio.run(_backend(url, hits))
        out["memory"] = asyncio.run(_backend("memory://", hits))
        out["two_processes_redis"] = _two_processes(url)
    out["two_processes_memory"] = _two_processes("memory://")
    out["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    return out
