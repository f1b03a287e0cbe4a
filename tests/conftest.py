"""Shared fixtures: real servers on free loopback ports; the HTTP API in process (``client``, a
``live_url`` server for subprocesses); one Ray cluster and one Serve app per session (``api``)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from deployments.app import create_app
from linqra.config import (
    AgentSettings,
    ChatSettings,
    ExecutionSettings,
    KnowledgeSettings,
    LLMProviderConfig,
    LLMSettings,
    MetricsSettings,
    ServiceConfig,
    Settings,
    TracingSettings,
)
from linqra.logs import ray_logging_config
from linqra.system import System
from tests.support import xdist_groups
from tests.support.browser import browser, console, console_app  # noqa: F401 (fixtures)
from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_openai import FakeOpenAI
from tests.support.live import serve_in_thread
from tests.support.otlp import OtlpReceiver
from tests.support.servers import HttpService, free_port, mongo_server, redis_server

NAMESPACE = "linqra-test"
# Set before Ray starts, so that the gateway and pool actors inherit it.
os.environ.setdefault("LINQRA_TEST_ANTHROPIC_KEY", "sk-ant-test")


# -- no network beyond loopback ----------------------------------------------------
@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    """A test that tries to reach a non-loopback address fails instead of touching a network."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if host not in ("127.0.0.1", "::1", "localhost") and not str(host).startswith("127."):
                raise OSError(f"test tried to reach {host}: tests stay on loopback")
        return real_connect(self, address)

    socket.socket.connect = guarded  # type: ignore[method-assign]
    yield
    socket.socket.connect = real_connect  # type: ignore[method-assign]


# -- servers ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def mongo_url() -> Iterator[str]:
    with mongo_server() as url:
        yield url


@pytest.fixture(scope="session")
def http_service() -> Iterator[HttpService]:
    with HttpService("svc-a") as service:
        yield service


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="session")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    from tests.support.servers import tansu_broker

    with tansu_broker() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def milvus_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Milvus Lite server on a free loopback port, as `linqra up` runs it."""
    from linqra.vectors import EmbeddedMilvus

    server = EmbeddedMilvus(tmp_path_factory.mktemp("milvus") / "data").start()
    yield server.uri
    server.stop()


@pytest.fixture(scope="session")
def fake_gemini() -> Iterator[Any]:
    from tests.support.fake_gemini import FakeGemini

    with FakeGemini() as server:
        yield server


@pytest.fixture(scope="session")
def fake_cohere() -> Iterator[Any]:
    from tests.support.fake_cohere import FakeCohere

    with FakeCohere() as server:
        yield server


@pytest.fixture(scope="session")
def http_service_b() -> Iterator[HttpService]:
    with HttpService("svc-b") as service:
        yield service


def make_settings(
    data_dir: Path,
    a: HttpService,
    b: HttpService,
    openai: FakeOpenAI | None = None,
    anthropic: FakeAnthropic | None = None,
    milvus: str | None = None,
    **overrides: Any,
) -> Settings:
    # LLM providers point at local servers that speak each provider's protocol
    providers = dict(LLMSettings().providers)
    if openai is not None:
        providers["openai"] = LLMProviderConfig(kind="openai", base_url=openai.base_url)
    if anthropic is not None:
        providers["anthropic"] = LLMProviderConfig(
            kind="anthropic", base_url=anthropic.url, api_key_env="LINQRA_TEST_ANTHROPIC_KEY"
        )
    return Settings(
        data_dir=data_dir,
        services={
            "quotes-service": ServiceConfig(urls=[a.url], timeout_seconds=5),
            "pair-service": ServiceConfig(
                urls=[a.url, b.url], timeout_seconds=5, failure_threshold=2, cooldown_seconds=30
            ),
        },
        execution=ExecutionSettings(
            heartbeat_seconds=0.5,
            stale_after_seconds=3,
            io_concurrency=512,
            default_step_timeout_seconds=30,
        ),
        llm=LLMSettings(providers=providers),
        knowledge=KnowledgeSettings(vector_uri=milvus, stale_after_seconds=2),
        agents=AgentSettings(idle_seconds=4, stale_after_seconds=3, misfire_threshold_seconds=5),
        chat=ChatSettings(heartbeat_seconds=0.5, stale_after_seconds=3, idle_seconds=4),
        **overrides,
    )


@pytest.fixture
def settings(
    tmp_path: Path, http_service: HttpService, http_service_b: HttpService, milvus_uri: str
) -> Settings:
    return make_settings(tmp_path, http_service, http_service_b, milvus=milvus_uri)


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[System]:
    sys_ = await System.open(settings)
    yield sys_
    await sys_.close()


@pytest.fixture
def llm_settings(
    tmp_path: Path,
    http_service: HttpService,
    http_service_b: HttpService,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    milvus_uri: str,
) -> Settings:
    """``settings`` with OpenAI and Anthropic served by their local fakes (as on Ray); a test
    module that needs them overrides ``settings`` with it."""
    return make_settings(
        tmp_path, http_service, http_service_b, fake_openai, fake_anthropic, milvus=milvus_uri
    )


# -- the HTTP API in process ----------------------------------------------------------------
TEAM_A = {"X-Team-Id": "team-a"}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The API in this process as team ``team-a``: the app's lifespan opens a System on the
    client's event loop (runs execute there, as asyncio tasks) and closes it afterwards."""
    with TestClient(create_app(settings=settings), headers=TEAM_A) as http:
        yield http


@pytest.fixture
def live_url(settings: Settings) -> Iterator[str]:
    """The same app served by uvicorn on a free loopback port, for a subprocess (the CLI)."""
    with serve_in_thread(create_app(settings=settings)) as url:
        yield url


# -- Ray and Serve ------------------------------------------------------------------
@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """Where the session cluster's processes export their spans (tests/test_tracing_ray.py)."""
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def ray_settings(
    tmp_path_factory: pytest.TempPathFactory,
    http_service: HttpService,
    http_service_b: HttpService,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    milvus_uri: str,
    otlp_receiver: OtlpReceiver,
) -> Settings:
    data = tmp_path_factory.mktemp("ray-data")
    base = make_settings(
        data, http_service, http_service_b, fake_openai, fake_anthropic, milvus=milvus_uri,
        metrics=MetricsSettings(team_labels=True),  # a test's team is its own series
        # every Ray test runs traced: spans go out over OTLP/HTTP from each process
        tracing=TracingSettings(
            otlp_url=otlp_receiver.traces_url, export_delay_ms=200, sample_ratio=1.0
        ),
    )  # fmt: skip
    return base.model_copy(
        update={"ray": base.ray.model_copy(update={"namespace": NAMESPACE})}
    ).portable()


def _move_dashboard_agent(port: int) -> None:
    """Ray's dashboard agent (it runs jobs) listens on 52365 whatever ``ray.init`` is given; a
    second cluster on the machine (``make bench``, a README test's ``linqra up``) would find it
    taken and run no jobs ("No available agent to submit job"). Give ours a free port."""
    from ray._private import parameter

    init = parameter.RayParams.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("dashboard_agent_listen_port", port)
        init(self, *args, **kwargs)

    parameter.RayParams.__init__ = __init__  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def ray_cluster(ray_settings: Settings) -> Iterator[Any]:
    import ray

    from deployments.serve_config import apply_ingress_env

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    apply_ingress_env()  # the tests run the gateway behind the default ingress
    # a gateway replica being stopped drains for this long (Serve's default 30 s gives an
    # outside load balancer time to notice); no balancer here: the session's end waited 30 s
    os.environ.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "1")
    _move_dashboard_agent(free_port())
    context = ray.init(
        address="local",  # a cluster of its own, even when `ray start` left one to join
        num_cpus=2,
        namespace=NAMESPACE,
        include_dashboard=True,  # the Jobs API (ray job submit) lives in the dashboard
        dashboard_host="127.0.0.1",
        dashboard_port=free_port(),
        logging_level="WARNING",
        log_to_driver=False,
        # metrics reach the node's export every second, not every 10 s, so a test sees them
        # soon (tests/test_prometheus.py); measured: +0.4 s CPU per 30 s for an idle cluster
        _system_config={"metrics_report_interval_ms": 1000},
        logging_config=ray.LoggingConfig(**ray_logging_config(ray_settings.logging)),
    )
    yield context
    ray.shutdown()


@pytest.fixture(scope="session")
def gateway_url(ray_cluster: Any, ray_settings: Settings) -> Iterator[str]:
    from ray import serve

    from deployments.gateway import build_app
    from deployments.serve_config import APP_NAME, logging_config

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=logging_config())
    serve.run(build_app(ray_settings), name=APP_NAME, route_prefix="/")
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        asyncio.run(asyncio.sleep(0.1))
    yield url
    serve.shutdown()


@pytest.fixture(scope="module")
def prometheus(ray_cluster: Any) -> Iterator[Any]:
    """A real Prometheus on a free loopback port with ``configs/prometheus.yml``, scraping every
    second the nodes of the session's cluster, found through the discovery file Ray writes."""
    from tests.support.prometheus import Prometheus, shipped_config

    found = Path(ray_cluster.address_info["session_dir"]) / "prom_metrics_service_discovery.json"
    with Prometheus(shipped_config(found)) as prom:
        prom.wait(lambda: prom.value('sum(up{job="ray"})'), "a first scrape of the cluster", 60)
        yield prom


@pytest.fixture
def api(gateway_url: str) -> Iterator[httpx.Client]:
    """The real Serve gateway as team ``team-a``: only for tests whose subject is Ray."""
    with httpx.Client(base_url=gateway_url, headers={"X-Team-Id": "team-a"}, timeout=60) as client:
        yield client


# -- a real OpenID provider -------------------------------------------------------------
@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """node-oidc-provider on a free loopback port (``linqra.testing.oidc.OidcProvider``) with
    the clients of ``DEFAULT_CLIENTS``: ``provider.token("alice")``, ``provider.settings()``.
    Shared by the session: a test that restarts, rotates or stops a provider makes its own."""
    from linqra.testing.oidc import OidcProvider

    with OidcProvider(workdir=tmp_path_factory.mktemp("oidc")) as provider:
        yield provider


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests on the session's Ray cluster run last, in their order: once started, the
    cluster's actors (Serve's controller, the scheduler, …) keep part of a core busy for the
    rest of the session, and every test after them would share the machine with it.

    Under ``pytest -n 2 --dist loadgroup --no-loadscope-reorder`` (``make test``) each module is
    a group of its own, run whole by one worker (its module fixtures made once), and every test
    on a Ray cluster — the session's, or one the test starts itself (``cluster``, ``multinode``)
    — is in one group, ``ray``: one worker runs them, those with a cluster of their own first
    (before the session's starts, as on one process), so no two Ray clusters share the machine,
    while the other worker runs the in-process tests beside them. The group comes first, so its
    worker starts it at once: it is the longest (11 of the 20 minutes on one process)."""

    def on_ray(item: pytest.Item) -> bool:
        fixtures = getattr(item, "fixturenames", ())
        return item.get_closest_marker("ray") is not None or "ray_cluster" in fixtures

    def own_cluster(item: pytest.Item) -> bool:
        return any(item.get_closest_marker(mark) for mark in ("cluster", "multinode"))

    def order(item: pytest.Item) -> int:  # sorts are stable: the order within each is kept
        if on_ray(item):
            return 1
        if hasattr(config, "workerinput"):  # under xdist
            return 0 if own_cluster(item) else 2
        return 0

    items.sort(key=order)
    for item in items:
        group = "ray" if on_ray(item) or own_cluster(item) else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
    xdist_groups.write_groups(config, items)


def pytest_runtest_setup(item: pytest.Item) -> None:
    xdist_groups.yield_to_ray(item)


@pytest.hookimpl(optionalhook=True)  # xdist's hooks: `pytest -p no:xdist` still runs
def pytest_configure_node(node: Any) -> None:
    xdist_groups.configure_node(node)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    return xdist_groups.make_scheduler(config, log) if xdist_groups.enabled(config) else None
