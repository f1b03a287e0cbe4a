"""Rate limits (``linqra/ratelimit.py``) against a real redis-server and in memory: limits hold,
``Retry-After`` is when the request fits again, two OS processes share one Redis limit (N in
total, not N each) while ``memory://`` counts per process, and a Redis outage follows each rule's
policy without hanging."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pydantic
import pytest

from linqra.config import RateLimitSettings, Settings
from linqra.errors import RateLimited, StoreError, ValidationError
from linqra.ratelimit import Decision, Hit, RateLimiter, RateLimitRules, Rule
from tests.support.servers import redis_process


def _key() -> str:
    return uuid.uuid4().hex


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[RateLimiter]:
    url = "memory://" if request.param == "memory" else redis_url
    limiter = RateLimiter.open(url, connect_timeout=2.0, timeout=5.0)
    yield limiter
    await limiter.close()


# -- rules and settings ----------------------------------------------------------------------
def test_a_rule_is_read_from_text_and_a_bad_one_names_the_rule() -> None:
    rule = Rule("team", "600/minute")
    assert (rule.amount, rule.window_seconds, rule.fail_open) == (600, 60, True)
    assert Rule("x", "10 per 2 hours").window_seconds == 7200
    for bad in ("lots", "0/minute", "10/fortnight", "1/second;5/minute", ""):
        with pytest.raises(ValidationError) as err:
            Rule("widget", bad)
        assert err.value.field == "widget" and err.value.status == 400


def test_settings_refuse_a_bad_rate_naming_the_setting() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"rate_limits\.team"):
        Settings(rate_limits={"team": "as many as you like"})  # type: ignore[arg-type]
    with pytest.raises(pydantic.ValidationError, match="fail_closed"):
        RateLimitSettings.model_validate({"fail_closed": ["nobody"]})


def test_only_widget_keys_fail_closed_by_default() -> None:
    rules = RateLimitRules.from_settings(Settings().rate_limits)
    closed = {r.name for r in (rules.api_key, rules.team, rules.widget, rules.llm_tokens,
                               rules.failed_auth) if not r.fail_open}  # fmt: skip
    assert closed == {"widget"}
    custom = RateLimitRules.from_settings(RateLimitSettings(team="5/second", fail_closed=("team",)))
    assert custom.team == Rule("team", "5/second", fail_open=False)
    assert custom.widget.fail_open


async def test_bad_keys_costs_and_urls_are_validation_errors() -> None:
    limiter = RateLimiter.open("memory://")
    rule = Rule("r", "5/minute")
    with pytest.raises(ValidationError) as err:
        await limiter.hit(rule, "")
    assert err.value.field == "key"
    for cost in (0, -3, 1.5, True):
        with pytest.raises(ValidationError) as err:
            await limiter.hit(rule, "k", cost)  # type: ignore[arg-type]
        assert err.value.field == "cost"
    with pytest.raises(ValidationError) as err:
        RateLimiter.open("mongodb://127.0.0.1:1/x")
    assert err.value.field == "cache_url"
    assert not RateLimiter.open("memory://").cluster_wide


def test_a_decision_gives_the_gateway_its_headers_and_error() -> None:
    ok = Decision(True, "team", 10, 3, 1_900_000_000.2, 0.0)
    assert ok.headers() == {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "3",
                            "X-RateLimit-Reset": "1900000001"}  # fmt: skip
    ok.raise_if_denied()
    denied = Decision(False, "team", 10, 0, 1_900_000_000.0, 2.2)
    assert denied.headers()["Retry-After"] == "3"
    with pytest.raises(RateLimited) as err:
        denied.raise_if_denied()
    assert err.value.status == 429 and err.value.retry_after == 2.2  # type: ignore[attr-defined]
    assert err.value.headers["Retry-After"] == "3"  # type: ignore[attr-defined]
    never = Decision(False, "llm_tokens", 10, 10, 1_900_000_000.0, None)
    assert "Retry-After" not in never.headers()


# -- the limits, in memory and in Redis -------------------------------------------------------
async def test_a_limit_holds_and_counts_down(limiter: RateLimiter) -> None:
    rule, key = Rule("api_key", "5/hour"), _key()
    before = time.time()
    decisions = [await limiter.hit(rule, key) for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0, 0]
    assert all(d.limit == 5 and not d.degraded for d in decisions)
    denied = decisions[-1]
    assert denied.retry_after_seconds is not None and 0 < denied.retry_after_seconds <= 3600
    assert before < denied.reset_at <= time.time() + 2 * 3600
    # another key, and another rule for the same key, count apart
    assert (await limiter.hit(rule, _key())).allowed
    assert (await limiter.hit(Rule("team", "5/hour"), key)).allowed
    await limiter.clear(rule, key)
    assert (await limiter.hit(rule, key)).remaining == 4


async def test_a_cost_is_spent_and_a_denied_hit_spends_nothing(limiter: RateLimiter) -> None:
    tokens, team = Rule("llm_tokens", "1000/hour"), _key()
    assert (await limiter.hit(tokens, team, 900)).remaining == 100
    refused = await limiter.hit(tokens, team, 500)
    assert not refused.allowed and refused.remaining == 100
    assert (await limiter.peek(tokens, team, 100)).allowed  # a peek spends nothing …
    assert (await limiter.hit(tokens, team, 100)).remaining == 0  # … and the 500 spent nothing
    never = await limiter.hit(tokens, _key(), 1001)
    assert not never.allowed and never.retry_after_seconds is None


async def test_several_hits_are_decided_together_each_on_its_own(limiter: RateLimiter) -> None:
    """``hit_many`` (one Redis round trip): each hit as ``hit`` decides it, on the counters the
    library itself reads (``peek`` goes through ``limits``' storage, not the pipeline)."""
    key_rule, team_rule = Rule("api_key", "3/hour"), Rule("team", "5/hour")
    key, team = _key(), _key()
    rounds = [await limiter.hit_many([Hit(key_rule, key), Hit(team_rule, team)]) for _ in range(4)]
    assert [(k.allowed, t.allowed) for k, t in rounds] == [(True, True)] * 3 + [(False, True)]
    assert [(k.remaining, t.remaining) for k, t in rounds] == [(2, 4), (1, 3), (0, 2), (0, 1)]
    assert rounds[-1][0].retry_after_seconds and not rounds[-1][1].retry_after_seconds
    assert not (await limiter.peek(key_rule, key)).allowed  # the library sees what was spent
    assert (await limiter.peek(team_rule, team, 1)).remaining == 1
    tokens = Rule("llm_tokens", "100/hour")
    big, small = await limiter.hit_many([Hit(tokens, team, 101), Hit(tokens, team, 60)])
    assert not big.allowed and big.retry_after_seconds is None  # never fits, spends nothing
    assert small.allowed and small.remaining == 40
    with pytest.raises(ValidationError):
        await limiter.hit_many([Hit(tokens, team, 0)])


async def test_scripts_lost_by_a_restarted_redis_are_loaded_again() -> None:
    import redis

    rule = Rule("team", "10/hour")
    with redis_process() as server:
        limiter = RateLimiter.open(server.url)
        assert (await limiter.hit(rule, "t")).remaining == 9
        redis.Redis.from_url(server.url).script_flush()
        decisions = await limiter.hit_many([Hit(rule, "t"), Hit(rule, "u")])
        assert [(d.remaining, d.degraded) for d in decisions] == [(8, False), (9, False)]
        await limiter.close()


async def test_retry_after_is_when_the_same_request_fits_again(limiter: RateLimiter) -> None:
    """A 500-token request refused after 900 of 1000 tokens: not allowed before Retry-After,
    allowed soon after it (the wait is for those 500 tokens, not for one)."""
    tokens, team = Rule("llm_tokens", "1000/2 seconds"), _key()
    assert (await limiter.hit(tokens, team, 900)).allowed
    refused = await limiter.hit(tokens, team, 500)
    start = time.monotonic()
    assert not refused.allowed and refused.retry_after_seconds is not None
    assert 0 < refused.retry_after_seconds <= 4
    assert (await limiter.peek(tokens, team, 1)).allowed  # one token fits at once
    deadline = start + refused.retry_after_seconds + 3
    while not (await limiter.peek(tokens, team, 500)).allowed:
        assert time.monotonic() < deadline, "the request never fitted again"
        await asyncio.sleep(0.02)
    waited = time.monotonic() - start
    assert refused.retry_after_seconds - 0.1 <= waited <= refused.retry_after_seconds + 1.5


async def test_a_key_reaches_redis_only_hashed(redis_url: str) -> None:
    import redis

    limiter = RateLimiter.open(redis_url)
    secret = "lq_" + _key()  # a raw credential passed by mistake
    await limiter.hit(Rule("api_key", "5/minute"), secret)
    await limiter.close()
    keys = [
        str(k) for k in redis.Redis.from_url(redis_url, decode_responses=True).keys("linqra:rl:*")
    ]
    assert keys and not any(secret in k or secret[3:] in k for k in keys)


# -- across processes -------------------------------------------------------------------------
def _hammer(url: str, key: str, attempts: int, barrier: Any, results: Any) -> None:
    """In a child process: ``attempts`` hits of one 40/hour limit from 4 tasks; put the count."""

    async def run() -> int:
        limiter = RateLimiter.open(url, connect_timeout=5.0, timeout=10.0)
        rule = Rule("team", "40/hour")
        await limiter.hit(Rule("warm-up", "1000/hour"), key)  # connect before the start
        barrier.wait(30)

        async def task(n: int) -> int:
            return sum([(await limiter.hit(rule, key)).allowed for _ in range(n)])

        allowed = sum(await asyncio.gather(*(task(attempts // 4) for _ in range(4))))
        await limiter.close()
        return allowed

    results.put(asyncio.run(run()))


def _two_processes(url: str, attempts: int) -> list[int]:
    ctx = multiprocessing.get_context("spawn")
    barrier, results, key = ctx.Barrier(2), ctx.Queue(), _key()
    procs = [ctx.Process(target=_hammer, args=(url, key, attempts, barrier, results))
             for _ in range(2)]  # fmt: skip
    for proc in procs:
        proc.start()
    try:
        counts = [results.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    assert all(proc.exitcode == 0 for proc in procs)
    return counts


def test_two_processes_share_one_limit_through_redis(redis_url: str) -> None:
    counts = _two_processes(redis_url, 60)
    assert sum(counts) == 40, counts  # 40 in total, not 40 each


def test_memory_limits_are_per_process() -> None:
    assert _two_processes("memory://", 60) == [40, 40]


# -- Redis down -------------------------------------------------------------------------------
async def test_redis_stopped_mid_test_fail_open_rules_allow_fail_closed_rules_deny(
    caplog: pytest.LogCaptureFixture,
) -> None:
    team, widget = Rule("team", "100/hour"), Rule("widget", "100/hour", fail_open=False)
    with redis_process() as server:
        limiter = RateLimiter.open(server.url, connect_timeout=0.5, timeout=0.5, outage_retry=0.05)
        assert (await limiter.hit(team, "t")).remaining == 99
        assert (await limiter.hit(widget, "w|127.0.0.1")).remaining == 99
        server.stop()
        caplog.set_level(logging.WARNING, logger="linqra.ratelimit")
        outage_end = time.monotonic() + 0.5  # several breaker intervals: Redis is tried again
        while (start := time.monotonic()) < outage_end:
            open_ = await limiter.hit(team, "t")
            assert open_.allowed and open_.degraded and open_.remaining == 100
            with pytest.raises(StoreError) as err:
                await limiter.hit(widget, "w|127.0.0.1")
            assert err.value.status == 503 and err.value.retry_after == 0.05
            assert "redis://" not in err.value.message
            assert time.monotonic() - start < 2.0  # bounded by the timeout, never a hang
        outage_logs = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(outage_logs) == 1  # once per outage, not once per request
        server.start()  # same port, empty: counting starts again
        deadline = time.monotonic() + 30
        while (decision := await limiter.hit(team, "t")).degraded:
            assert time.monotonic() < deadline, "the limiter never used Redis again"
            await asyncio.sleep(0.05)
        assert decision.allowed and decision.remaining == 99
        assert (await limiter.hit(widget, "w|127.0.0.1")).remaining == 99
        assert any("reachable again" in r.getMessage() for r in caplog.records)
        await limiter.close()


async def test_a_frozen_redis_costs_one_timeout_then_answers_at_once() -> None:
    team, widget = Rule("team", "100/hour"), Rule("widget", "100/hour", fail_open=False)
    with redis_process() as server:
        limiter = RateLimiter.open(server.url, connect_timeout=0.5, timeout=0.5, outage_retry=5.0)
        assert (await limiter.hit(team, "t")).allowed
        server.freeze()
        try:
            start = time.monotonic()
            assert (await limiter.hit(team, "t")).degraded  # waits for the timeout, no longer
            assert time.monotonic() - start < 0.5 + 1.5
            start = time.monotonic()
            for _ in range(20):  # the breaker is open: no call waits on the stuck server
                assert (await limiter.hit(team, "t")).degraded
                with pytest.raises(StoreError):
                    await limiter.hit(widget, "w")
            assert time.monotonic() - start < 0.5
        finally:
            server.thaw()
        await limiter.close()
