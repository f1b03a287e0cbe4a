"""HTTP steps: registered services and ad-hoc ``http`` calls.

``{"target": "quotes-service", "action": "fetch", "intent": "/api/people/random"}``
calls a service registered in the config (``services:``): one or more base
URLs used round-robin, a per-service timeout and a circuit breaker per URL.
``{"target": "http", "action": "fetch", "intent": "https://…"}`` calls an
absolute URL under the egress policy. Actions map to methods: ``fetch`` GET,
``create`` POST, ``update`` PUT, ``delete`` DELETE. ``params`` become the query
string, ``payload`` the JSON body, ``headers`` extra headers.

Responses: JSON bodies are returned parsed, others as text. 2xx succeeds;
408, 425, 429 and 5xx (and connection errors) are retryable, honouring
``Retry-After``; other 4xx fail the step at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import socket
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from linqra.config import EgressPolicy, ServiceConfig
from linqra.errors import EgressRefused, StepError, StepTimeout, ValidationError
from linqra.resilience import CircuitBreaker, parse_retry_after
from linqra.steps.base import ExecutorKind, StepCall, StepContext

if TYPE_CHECKING:
    import aiohttp

    from linqra.workflows.definition import Step

__all__ = [
    "METHODS",
    "HttpClients",
    "HttpTarget",
    "ServiceRouter",
    "ServiceTarget",
    "check_egress",
]

METHODS = {"fetch": "GET", "create": "POST", "update": "PUT", "delete": "DELETE"}
_RETRYABLE = {408, 425, 429, 500, 502, 503, 504}
_METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data", "metadata.azure.com"}
_METADATA_IPS = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("100.100.100.200"),
    ipaddress.ip_address("fd00:ec2::254"),
}
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# The IANA IPv4 and IPv6 special-purpose address registries, where Python's ``ipaddress``
# properties (``is_link_local``, ``is_multicast``, ``is_unspecified``, ``is_reserved``,
# ``is_loopback``, ``is_global``) are not enough: Python 3.11 calls the documentation ranges
# private (so allow_private would open them), 192.88.99.0/24, 3fff::/20, 192.0.0.0/24 and
# fec0::/10 global, and reads 0.0.0.0/8 as private although 0.0.0.0 reaches this host.
_NEVER: tuple[_Network, ...] = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "100::/64",  # discard-only
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
    )
)
_NOT_GLOBAL: tuple[_Network, ...] = tuple(
    ipaddress.ip_network(net)
    for net in (
        "192.0.0.0/24",  # IETF protocol assignments (two anycast addresses in it are refused too)
        "64:ff9b:1::/48",  # local-use NAT64
        "fec0::/10",  # deprecated site-local
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
MAX_RESPONSE_BYTES = 10 * 1024 * 1024


def _check_action(step: Step, field: str) -> None:
    if step.action is None or step.action not in METHODS:
        raise ValidationError(
            f"action must be one of {', '.join(METHODS)} for target {step.target!r}",
            field=f"{field}.action",
        )
    if not step.intent:
        raise ValidationError(
            f"intent (the path or URL) is required for target {step.target!r}",
            field=f"{field}.intent",
        )


class HttpClients:
    """The process's HTTP client for steps and its service router (round-robin, breakers).

    One aiohttp session per process (aiohttp: about 3x less CPU per call than httpx here),
    opened on first use: a process that runs no HTTP step never opens one.
    """

    def __init__(self, services: dict[str, ServiceConfig]) -> None:
        self.router = ServiceRouter(services)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1024, limit_per_host=512, ttl_dns_cache=60),
                raise_for_status=False,
                json_serialize=lambda o: json.dumps(o, separators=(",", ":"), ensure_ascii=False),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _request(
    ctx: StepContext, call: StepCall, url: str, timeout: float, headers: dict[str, str]
) -> Any:
    import aiohttp

    session = ctx.system.http.session
    method = METHODS[call.action or "fetch"]
    body = call.payload if method in ("POST", "PUT") or call.payload is not None else None
    query = {k: _query_value(v) for k, v in call.params.items()}
    try:
        async with session.request(
            method,
            url,
            params=query,
            json=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            content = await response.content.read(MAX_RESPONSE_BYTES + 1)
            return _result(method, url, response.status, response.headers, content)
    except TimeoutError as exc:
        raise StepTimeout(
            f"{method} {url}: timed out after {timeout:g}s", code="http_timeout"
        ) from exc
    except aiohttp.ClientError as exc:
        raise StepError(
            f"{method} {url}: cannot connect or read: {type(exc).__name__}: {exc}",
            code="http_unreachable",
        ) from exc


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _result(method: str, url: str, status: int, headers: Mapping[str, str], content: bytes) -> Any:
    if len(content) > MAX_RESPONSE_BYTES:
        raise StepError(
            f"{method} {url}: response over {MAX_RESPONSE_BYTES} bytes", non_retryable=True
        )
    if 200 <= status < 300:
        if not content:
            return None
        if "json" in headers.get("Content-Type", ""):
            try:
                return json.loads(content)
            except ValueError as exc:
                raise StepError(
                    f"{method} {url}: invalid JSON in response", non_retryable=True
                ) from exc
        return content.decode(errors="replace")
    detail = content[:500].decode(errors="replace")
    raise StepError(
        f"{method} {url}: HTTP {status}: {detail}",
        code=f"http_{status}",
        non_retryable=status not in _RETRYABLE,
        next_retry_delay=parse_retry_after(headers.get("Retry-After")),
    )


class ServiceRouter:
    """Round-robin over a service's URLs, skipping those whose breaker is open."""

    def __init__(self, services: dict[str, ServiceConfig]) -> None:
        self.services = services
        self._cycle = {
            name: itertools.cycle(range(len(cfg.urls))) for name, cfg in services.items()
        }
        self.breakers = {
            (name, url): CircuitBreaker(
                f"{name}@{url}", cfg.failure_threshold, cfg.cooldown_seconds, clock=time.monotonic
            )
            for name, cfg in services.items()
            for url in cfg.urls
        }

    def pick(self, name: str) -> tuple[str, CircuitBreaker]:
        cfg = self.services[name]
        for _ in range(len(cfg.urls)):
            url = cfg.urls[next(self._cycle[name])]
            breaker = self.breakers[(name, url)]
            if breaker.allow():
                return url, breaker
        raise StepError(
            f"service {name!r}: every URL's circuit breaker is open; retry after the cooldown",
            code="circuit_open",
            next_retry_delay=cfg.cooldown_seconds,
        )


class ServiceTarget:
    """A service registered in the config, called by name."""

    kind: ExecutorKind = "io"
    url_intent = True
    pure = False

    def __init__(self, name: str) -> None:
        self.name = name

    def validate(self, step: Step, field: str) -> None:
        _check_action(step, field)
        if not step.intent or not step.intent.startswith("/"):
            raise ValidationError(
                "intent must be a path starting with '/' for a service", field=f"{field}.intent"
            )

    async def run(self, call: StepCall, ctx: StepContext) -> Any:
        router = ctx.system.http.router
        if self.name not in router.services:
            raise StepError(f"service {self.name!r} is not configured here", non_retryable=True)
        cfg = router.services[self.name]
        base, breaker = router.pick(self.name)
        headers = {**cfg.headers, **call.headers}
        try:
            result = await _request(
                ctx,
                call,
                base + (call.intent or ""),
                min(call.timeout, cfg.timeout_seconds),
                headers,
            )
        except StepError as exc:
            if not exc.non_retryable or exc.code.startswith("http_5"):
                breaker.record_failure()
            else:
                breaker.record_success()  # the service answered; the request was wrong
            raise
        except BaseException:
            breaker.record_failure()
            raise
        breaker.record_success()
        return result


class HttpTarget:
    """Ad-hoc calls to an absolute URL, under the egress policy."""

    name = "http"
    kind: ExecutorKind = "io"
    url_intent = True
    pure = False

    def validate(self, step: Step, field: str) -> None:
        _check_action(step, field)
        intent = step.intent or ""
        if not intent.startswith("{{"):
            scheme = urlsplit(intent).scheme
            if scheme not in ("http", "https"):
                raise ValidationError(
                    "intent must be an absolute http(s) URL", field=f"{field}.intent"
                )

    async def run(self, call: StepCall, ctx: StepContext) -> Any:
        url = call.intent or ""
        await check_egress(url, ctx.settings.egress)
        return await _request(ctx, call, url, call.timeout, dict(call.headers))


async def check_egress(url: str, policy: EgressPolicy) -> None:
    """Refuse URLs the policy forbids; resolves the host name first.

    Always refused: cloud metadata endpoints, link-local (169.254/16, fe80::/10), multicast,
    unspecified, reserved, documentation and the other special-purpose ranges no HTTP call
    has business with. Loopback follows ``allow_loopback``; every other range of the IANA
    special-purpose registries that is not globally reachable (10/8, 100.64/10, 172.16/12,
    192.168/16, 198.18/15, fc00::/7, …) follows ``allow_private``. An IPv6 address carrying an
    IPv4 one is judged by that. (The check resolves the name once; a host that changes its
    address between check and connect is not caught.)
    """
    parts = urlsplit(url)
    if parts.scheme not in policy.allowed_schemes:
        raise EgressRefused(f"scheme {parts.scheme!r} is not allowed", field="intent")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise EgressRefused(f"URL has no host: {url!r}", field="intent")
    if host in _METADATA_HOSTS:
        raise EgressRefused(f"{host} is a cloud metadata endpoint", field="intent")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, parts.port or 443, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise StepError(f"cannot resolve {host}: {exc}", code="dns_failure") from exc
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for addr in addresses:
        _check_address(host, addr, policy)


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4, Teredo client), if any."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]  # where the tunnel delivers: the client
    return None


def _check_address(host: str, addr: _Address, policy: EgressPolicy) -> None:
    """Refuse ``addr`` unless it is globally reachable, or loopback/private the policy allows.

    An IPv6 address that carries an IPv4 one (``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``,
    6to4 ``2002::/16``, Teredo ``2001::/32``) is judged by that IPv4 address.
    """
    shown = f"{host} ({addr})"
    if isinstance(addr, ipaddress.IPv6Address) and (inner := _embedded_ipv4(addr)) is not None:
        addr, shown = inner, f"{host} ({addr}, carrying {inner})"
    if addr in _METADATA_IPS:
        raise EgressRefused(f"{shown} is a cloud metadata address", field="intent")
    if addr.is_loopback:
        if not policy.allow_loopback:
            raise EgressRefused(
                f"{shown} is loopback; egress.allow_loopback is off", field="intent"
            )
        return
    # ranges Python calls reserved or global that are private-use: allow_private decides
    private_use = any(addr in net for net in _NOT_GLOBAL)
    if not private_use and (
        addr.is_link_local
        or addr.is_multicast
        or addr.is_unspecified
        or addr.is_reserved
        or any(addr in net for net in _NEVER)
    ):
        raise EgressRefused(
            f"{shown} is a link-local, multicast, documentation or reserved address",
            field="intent",
        )
    if (private_use or not addr.is_global) and not policy.allow_private:
        raise EgressRefused(
            f"{shown} is a private or otherwise not globally reachable address; "
            "egress.allow_private is off",
            field="intent",
        )
