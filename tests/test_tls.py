"""HTTPS (deployments/tls.py): the settings, the options Serve and uvicorn get, the refusal of
TLS behind Serve's HAProxy ingress, and one real round trip over HTTPS with a ``trustme``
certificate served by uvicorn. (The same files reach Serve's proxy through ``HTTPOptions``;
the session's Ray cluster runs HAProxy, which serves plain HTTP only, so no Serve test here.)"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pydantic
import pytest
import trustme
import uvicorn
from fastapi.testclient import TestClient

from deployments.app import create_app
from deployments.headers import HSTS
from deployments.tls import (
    check_tls_ingress,
    serve_http_options,
    tls_ingress_problem,
    uvicorn_tls_options,
)
from linqra.config import HttpSettings, Settings, load_settings
from tests.support.servers import free_port

pytestmark = pytest.mark.cluster  # `linqra up`: a Ray cluster of its own (tests/conftest.py)


@dataclass(frozen=True)
class Certificate:
    ca: trustme.CA
    certfile: Path
    keyfile: Path

    def trusting(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "gateway.pem", tmp_path / "gateway.key"
    certfile.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(keyfile))
    return Certificate(ca, certfile, keyfile)


def _tls(settings: Settings, certificate: Certificate) -> Settings:
    http = HttpSettings.model_validate(
        {
            **settings.http.model_dump(),
            "tls_certfile": certificate.certfile,
            "tls_keyfile": certificate.keyfile,
        }
    )
    return settings.model_copy(update={"http": http})


# -- settings -------------------------------------------------------------------------------
def _refusal(**http: object) -> str:
    with pytest.raises(pydantic.ValidationError) as refused:
        Settings(http=http)  # type: ignore[arg-type]
    return str(refused.value)


def test_tls_needs_both_files_and_they_must_exist(
    certificate: Certificate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate.certfile, certificate.keyfile
    assert "http.tls_certfile is set but http.tls_keyfile is not" in _refusal(tls_certfile=cert)
    assert "http.tls_keyfile is set but http.tls_certfile is not" in _refusal(tls_keyfile=key)
    missing = tmp_path / "nope.pem"
    refused = _refusal(tls_certfile=missing, tls_keyfile=key)
    assert f"http.tls_certfile\n  Value error, {missing} is not a readable file" in refused
    refused = _refusal(tls_certfile=cert, tls_keyfile=tmp_path)  # a directory
    assert f"http.tls_keyfile\n  Value error, {tmp_path} is not a readable file" in refused
    # the environment form, as an operator sets it
    monkeypatch.setenv("LINQRA_HTTP__TLS_CERTFILE", str(cert))
    with pytest.raises(pydantic.ValidationError) as half:
        load_settings()
    assert "http.tls_keyfile is not" in str(half.value)
    monkeypatch.setenv("LINQRA_HTTP__TLS_KEYFILE", str(key))
    http = load_settings().http
    assert http.tls and (http.tls_certfile, http.tls_keyfile) == (cert, key)
    assert not HttpSettings().tls


def test_cors_origins_are_exact_web_origins() -> None:
    assert HttpSettings(cors_origins=["HTTPS://Console.example:8443"]).cors_origins == [
        "https://console.example:8443"
    ]
    for bad in ("*", "https://console.example/app", "console.example", "ftp://console.example"):
        refused = _refusal(cors_origins=["https://fine.example", bad])
        assert "http.cors_origins.1" in refused and "is not a web origin" in refused, bad


# -- what Serve and uvicorn get -------------------------------------------------------------
def test_serve_gets_the_files_through_its_http_options(certificate: Certificate) -> None:
    from ray.serve.config import HTTPOptions

    http = HttpSettings(
        host="0.0.0.0",
        port=8443,
        tls_certfile=certificate.certfile,
        tls_keyfile=certificate.keyfile,
    )
    options = serve_http_options(http, {"RAY_SERVE_ENABLE_HA_PROXY": "0"})
    serve = HTTPOptions(**options)  # Serve's own validation of the names
    assert (serve.host, serve.port) == ("0.0.0.0", 8443)
    assert serve.ssl_certfile == str(certificate.certfile)
    assert serve.ssl_keyfile == str(certificate.keyfile)
    assert uvicorn_tls_options(http) == {
        "ssl_certfile": str(certificate.certfile),
        "ssl_keyfile": str(certificate.keyfile),
    }
    plain = HttpSettings()
    assert serve_http_options(plain, {}) == {"host": "127.0.0.1", "port": 8000}
    assert uvicorn_tls_options(plain) == {}


def test_tls_behind_haproxy_is_refused_at_start_with_one_line(certificate: Certificate) -> None:
    http = HttpSettings(tls_certfile=certificate.certfile, tls_keyfile=certificate.keyfile)
    for environ in ({"RAY_SERVE_ENABLE_HA_PROXY": "1"}, {}):  # unset: Linqra picks HAProxy
        with pytest.raises(SystemExit) as refused:
            serve_http_options(http, environ)
        message = str(refused.value.code)
        assert "\n" not in message
        assert "http.tls_certfile/http.tls_keyfile" in message
        assert "RAY_SERVE_ENABLE_HA_PROXY=0" in message and "plain HTTP only" in message
        assert message == tls_ingress_problem(http, environ)
    assert "(Linqra's default)" in str(tls_ingress_problem(http, {}))
    check_tls_ingress(http, {"RAY_SERVE_ENABLE_HA_PROXY": "0"})  # the proxy ingress: fine
    check_tls_ingress(HttpSettings(), {"RAY_SERVE_ENABLE_HA_PROXY": "1"})  # no TLS: fine


# -- a real round trip ----------------------------------------------------------------------
@pytest.fixture
def https_url(settings: Settings, certificate: Certificate) -> Iterator[str]:
    """The app served by uvicorn over HTTPS on a free loopback port."""
    settings = _tls(settings, certificate)
    port = free_port()
    config = uvicorn.Config(
        create_app(settings=settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        **uvicorn_tls_options(settings.http),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="https-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"https://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


def test_https_with_a_trustme_certificate(https_url: str, certificate: Certificate) -> None:
    with httpx.Client(verify=certificate.trusting(), timeout=10) as client:
        answer = client.get(f"{https_url}/healthz")
    assert answer.status_code == 200 and answer.json()["status"] == "ok"
    assert answer.headers["Strict-Transport-Security"] == HSTS
    assert answer.headers["X-Request-Id"]
    # a client that does not trust the test CA refuses the certificate
    with httpx.Client(timeout=10) as untrusting, pytest.raises(httpx.ConnectError):
        untrusting.get(f"{https_url}/healthz")
    # plain HTTP to the TLS port gets no answer
    plain = https_url.replace("https://", "http://")
    with httpx.Client(timeout=10) as client, pytest.raises(httpx.TransportError):
        client.get(f"{plain}/healthz")


def test_hsts_only_when_the_gateway_serves_tls(
    settings: Settings, certificate: Certificate
) -> None:
    with TestClient(create_app(settings=_tls(settings, certificate))) as client:
        assert client.get("/healthz").headers["Strict-Transport-Security"] == HSTS
    with TestClient(create_app(settings=settings)) as client:
        assert "Strict-Transport-Security" not in client.get("/healthz").headers


def test_linqra_up_refuses_tls_behind_haproxy_before_starting_anything(
    certificate: Certificate, tmp_path: Path
) -> None:
    """``make run`` with a certificate and the default (HAProxy) ingress: one line, exit 1."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINQRA_", "RAY_"))}
    env.update(
        LINQRA_DATA_DIR=str(tmp_path / "data"),
        LINQRA_HTTP__PORT=str(free_port()),
        LINQRA_RAY__DASHBOARD_PORT=str(free_port()),
        LINQRA_HTTP__TLS_CERTFILE=str(certificate.certfile),
        LINQRA_HTTP__TLS_KEYFILE=str(certificate.keyfile),
    )
    done = subprocess.run(
        [sys.executable, "-m", "deployments.cli", "up"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    *warnings, refusal = done.stderr.strip().splitlines()
    assert "HAProxy, which serves plain HTTP only" in refusal, done.stderr
    # one line, but for the warning `linqra up` rightly adds when another Ray cluster on this
    # machine (a developer's `make run`) holds the dashboard agent's fixed port
    assert all("port :52365 (Ray's dashboard agent" in line for line in warnings), done.stderr
    assert len(warnings) <= 1, done.stderr
    assert not (tmp_path / "data" / "ray-address").exists()


def test_serve_deploy_refuses_tls_behind_haproxy_too(
    certificate: Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve deploy configs/serve.yaml`` builds the app through ``app_builder``: the same
    refusal as ``linqra up``, before any actor starts."""
    from deployments.gateway import app_builder

    monkeypatch.setenv("LINQRA_HTTP__TLS_CERTFILE", str(certificate.certfile))
    monkeypatch.setenv("LINQRA_HTTP__TLS_KEYFILE", str(certificate.keyfile))
    monkeypatch.delenv("RAY_SERVE_ENABLE_HA_PROXY", raising=False)
    with pytest.raises(ValueError, match="HAProxy, which serves plain HTTP only"):
        app_builder({})


@pytest.mark.ray
def test_linqra_up_serves_https_through_serves_proxy(
    certificate: Certificate, tmp_path: Path
) -> None:
    """``make run`` with a certificate and Serve's proxy ingress: the gateway answers over HTTPS
    (trusted through the test CA, with HSTS) and not over plain HTTP."""
    import os
    import signal
    import subprocess
    import tempfile

    from tests.test_readme import _AGENT_PORT_HOOK, VENV_BIN, _clean_env, _stop, _wait_for_line

    port = free_port()
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_AGENT_PORT_HOOK)  # Ray's job agent on a free port
    env = {
        **_clean_env(),
        "LINQRA_HTTP__PORT": str(port),
        "LINQRA_RAY__DASHBOARD_PORT": str(free_port()),
        "LINQRA_DATA_DIR": str(tmp_path / "data"),
        "LINQRA_HTTP__TLS_CERTFILE": str(certificate.certfile),
        "LINQRA_HTTP__TLS_KEYFILE": str(certificate.keyfile),
        "RAY_SERVE_ENABLE_HA_PROXY": "0",
        "PYTHONPATH": str(site),
        "LINQRA_TEST_DASHBOARD_AGENT_PORT": str(free_port()),
        "RAY_TMPDIR": tempfile.mkdtemp(prefix="lq-tls-", dir="/tmp"),
    }
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [str(VENV_BIN / "linqra"), "up"], cwd=Path(__file__).resolve().parents[1], env=env,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        _wait_for_line(up, log, "Linqra is up", 240)
        assert f"https://127.0.0.1:{port}" in log.read_text()
        answer = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=certificate.trusting())
        assert answer.status_code == 200 and answer.json()["status"] == "ok"
        assert answer.headers["Strict-Transport-Security"] == HSTS
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        _stop(up, signal.SIGINT, 60)
        assert os.path.exists(log)
    lines = log.read_text(errors="replace").splitlines()  # Ctrl-C: it says when it is done
    assert "stopped" in lines[lines.index("stopping…") :], lines[-5:]
