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


# One case per family of the IANA IPv4 and IPv6 special-purpose address registries (plus
# multicast). "failed before" marks the cases the policy got wrong before it checked them all.
ALWAYS_REFUSED = {
    "this network 0.0.0.0/8 (failed before)": "http://0.1.2.3/",
    "limited broadcast 255.255.255.255": "http://255.255.255.255/",
    "reserved 240.0.0.0/4": "http://240.0.0.1/",
    "documentation 192.0.2.0/24 (failed before)": "http://192.0.2.10/",
    "documentation 198.51.100.0/24 (failed before)": "http://198.51.100.7/",
    "documentation 203.0.113.0/24 (failed before)": "http://203.0.113.9/",
    "6to4 relay anycast 192.88.99.0/24 (failed before)": "http://192.88.99.1/",
    "multicast ff00::/8": "http://[ff02::1]/",
    "unspecified ::/128": "http://[::]/",
    "discard-only 100::/64": "http://[100::1]/",
    "documentation 2001:db8::/32 (failed before)": "http://[2001:db8::1]/",
    "documentation 3fff::/20 (failed before)": "http://[3fff::1]/",
    "segment routing 5f00::/16": "http://[5f00::1]/",
    "IPv4-compatible ::/96": "http://[::a00:1]/",
}


@pytest.mark.parametrize("url", ALWAYS_REFUSED.values(), ids=ALWAYS_REFUSED.keys())
async def test_egress_refuses_special_purpose_ranges_even_with_private_allowed(url: str) -> None:
    with pytest.raises(EgressRefused):
        await check_egress(url, EgressPolicy(allow_loopback=True, allow_private=True))


NOT_GLOBAL = {
    "private 10.0.0.0/8": "http://10.9.8.7/",
    "private 172.16.0.0/12": "http://172.20.0.1/",
    "private 192.168.0.0/16": "http://192.168.1.1/",
    "carrier-grade NAT 100.64.0.0/10 (failed before)": "http://100.64.0.1/",
    "IETF protocol assignments 192.0.0.0/24 (failed before)": "http://192.0.0.8/",
    "benchmarking 198.18.0.0/15": "http://198.19.0.1/",
    "unique local fc00::/7": "http://[fd12:3456::1]/",
    "site-local fec0::/10 (failed before)": "http://[fec0::1]/",
    "IETF protocol assignments 2001::/23": "http://[2001:2::1]/",
    "local-use NAT64 64:ff9b:1::/48 (failed before: refused even when allowed)": (
        "http://[64:ff9b:1::a00:1]/"
    ),
}


@pytest.mark.parametrize("url", NOT_GLOBAL.values(), ids=NOT_GLOBAL.keys())
async def test_egress_ranges_not_globally_reachable_follow_allow_private(url: str) -> None:
    with pytest.raises(EgressRefused, match="allow_private"):
        await check_egress(url, EgressPolicy(allow_private=False))
    await check_egress(url, EgressPolicy(allow_private=True))


EMBEDDED = {
    "IPv4-mapped ::ffff:0:0/96 of 100.64.0.1 (failed before)": "http://[::ffff:100.64.0.1]/",
    "IPv4-mapped ::ffff:0:0/96 of 10.0.0.1": "http://[::ffff:10.0.0.1]/",
    "NAT64 64:ff9b::/96 of 10.0.0.1 (failed before: refused even when allowed)": "http://[64:ff9b::a00:1]/",
    "6to4 2002::/16 of 10.0.0.1 (failed before)": "http://[2002:a00:1::1]/",
    "Teredo 2001::/32 of client 10.0.0.1": "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/",
}


@pytest.mark.parametrize("url", EMBEDDED.values(), ids=EMBEDDED.keys())
async def test_egress_judges_an_embedded_ipv4_address_by_that_address(url: str) -> None:
    with pytest.raises(EgressRefused, match="allow_private"):
        await check_egress(url, EgressPolicy(allow_private=False))
    await check_egress(url, EgressPolicy(allow_private=True))


LOOPBACK = {
    "127.0.0.0/8": "http://127.3.2.1/",
    "::1 (failed before: refused even when allowed)": "http://[::1]/",
    "IPv4-mapped ::ffff:127.0.0.1": "http://[::ffff:127.0.0.1]/",
    "NAT64 of 127.0.0.1 (failed before: refused even when allowed)": "http://[64:ff9b::7f00:1]/",
    "6to4 of 127.0.0.1 (failed before)": "http://[2002:7f00:1::1]/",
    "Teredo of client 127.0.0.1 (failed before)": "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
}


@pytest.mark.parametrize("url", LOOPBACK.values(), ids=LOOPBACK.keys())
async def test_egress_loopback_in_any_form_follows_allow_loopback(url: str) -> None:
    with pytest.raises(EgressRefused, match="allow_loopback"):
        await check_egress(url, EgressPolicy(allow_loopback=False, allow_private=True))
    await check_egress(url, EgressPolicy(allow_loopback=True, allow_private=False))


GLOBAL = {
    "IPv4": "http://93.184.215.14/",
    "IPv6": "http://[2606:4700::1111]/",
    "NAT64 of a public IPv4 (failed before)": "http://[64:ff9b::808:808]/",
    "6to4 of a public IPv4": "http://[2002:808:808::1]/",
    "Teredo of a public client (failed before)": "http://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/",
}


@pytest.mark.parametrize("url", GLOBAL.values(), ids=GLOBAL.keys())
async def test_egress_lets_globally_reachable_addresses_through(url: str) -> None:
    await check_egress(url, EgressPolicy(allow_loopback=False, allow_private=False))


async def test_http_target_refuses_before_connecting(system: System) -> None:
    registry, ctx = system.registry, system.ctx
    with pytest.raises(EgressRefused):
        await registry.get("http").run(call("http", "fetch", "http://169.254.169.254/latest"), ctx)
