"""HTTP steps: the service registry (round-robin, breaker), ad-hoc calls under the egress policy."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from linqra.config import EgressPolicy, ServiceConfig, Settings
from linqra.errors import EgressRefused, StepError
from linqra.steps.base import StepCall
from linqra.steps.http import check_egress
from linqra.system import System
from tests.support.servers import HttpService, free_port


def call(target: str, action: str, intent: str, **kw: Any) -> StepCall:
    return StepCall(
        execution_id="ex",
        team_id="t",
        step=1,
        target=target,
        action=action,
        intent=intent,
        params=kw.get("params", {}),
        payload=kw.get("payload"),
        headers=kw.get("headers", {}),
        llm_config=None,
        stream=False,
        kind="io",
        timeout=5,
        max_attempts=1,
        backoff_initial=0.01,
        backoff_max=0.01,
        backoff_multiplier=2,
    )


@contextlib.asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[System]:
    system = await System.open(settings, init=False)
    try:
        yield system
    finally:
        await system.close()


@pytest.mark.parametrize(
    ("action", "method"),
    [("fetch", "GET"), ("create", "POST"), ("update", "PUT"), ("delete", "DELETE")],
)
async def test_actions_map_to_methods(system: System, action: str, method: str) -> None:
    registry, ctx = system.registry, system.ctx
    out = await registry.get("quotes-service").run(
        call(
            "quotes-service",
            action,
            "/echo/x",
            params={"q": "a b", "flag": True},
            payload={"k": 1},
            headers={"X-Trace": "abc"},
        ),
        ctx,
    )
    assert out["method"] == method and out["query"] == {"q": "a b", "flag": "true"}
    assert out["headers"]["x-trace"] == "abc"
    assert out["body"] == '{"k":1}'


async def test_round_robin_across_service_urls(system: System) -> None:
    registry, ctx = system.registry, system.ctx
    target = registry.get("pair-service")
    served = [
        (await target.run(call("pair-service", "fetch", "/api/people"), ctx))["served_by"]
        for _ in range(4)
    ]
    assert served == ["svc-a", "svc-b", "svc-a", "svc-b"]


async def test_circuit_breaker_skips_a_dead_url(http_service: HttpService, tmp_path: Any) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    settings = Settings(
        data_dir=tmp_path,
        services={
            "svc": ServiceConfig(
                urls=[dead, http_service.url], failure_threshold=1, cooldown_seconds=60
            )
        },
    )
    async with opened(settings) as system:
        target, ctx = system.registry.get("svc"), system.ctx
        with pytest.raises(StepError, match="cannot connect"):
            await target.run(call("svc", "fetch", "/api/people"), ctx)
        results = [
            (await target.run(call("svc", "fetch", "/api/people"), ctx))["served_by"]
            for _ in range(3)
        ]
    assert results == ["svc-a"] * 3  # the dead URL's breaker is open


async def test_all_breakers_open_is_a_retryable_error(tmp_path: Any) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    settings = Settings(
        data_dir=tmp_path, services={"svc": ServiceConfig(urls=[dead], failure_threshold=1)}
    )
    async with opened(settings) as system:
        target, ctx = system.registry.get("svc"), system.ctx
        with pytest.raises(StepError):
            await target.run(call("svc", "fetch", "/x"), ctx)
        with pytest.raises(StepError) as err:
            await target.run(call("svc", "fetch", "/x"), ctx)
    assert err.value.code == "circuit_open" and not err.value.non_retryable


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://metadata.google.internal/x",
        "http://0.0.0.0/",
        "http://[::ffff:169.254.169.254]/",
        "http://224.0.0.1/",
    ],
)
async def test_egress_always_refuses_metadata_and_link_local(url: str) -> None:
    with pytest.raises(EgressRefused):
        await check_egress(url, EgressPolicy(allow_loopback=True, allow_private=True))


async def test_egress_private_and_loopback_follow_the_policy() -> None:
    await check_egress("http://127.0.0.1:9/", EgressPolicy(allow_loopback=True))
    with pytest.raises(EgressRefused, match="loopback"):
        await check_egress("http://127.0.0.1:9/", EgressPolicy(allow_loopback=False))
    with pytest.raises(EgressRefused, match="private"):
        await check_egress("http://10.1.2.3/", EgressPolicy(allow_private=False))
    await check_egress("http://10.1.2.3/", EgressPolicy(allow_private=True))
    with pytest.raises(EgressRefused, match="scheme"):
        await check_egress("file:///etc/passwd", EgressPolicy())


async def test_http_target_refuses_before_connecting(system: System) -> None:
    registry, ctx = system.registry, system.ctx
    with pytest.raises(EgressRefused):
        await registry.get("http").run(call("http", "fetch", "http://169.254.169.254/latest"), ctx)
