"""``linqra up`` on a taken port says so in one line and exits before Ray starts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deployments import ports
from deployments.ports import check_ports_free, fixed_ports, port_is_free, taken_port_message
from linqra.config import HttpSettings, RaySettings, Settings
from tests.support.servers import free_port

pytestmark = pytest.mark.cluster  # `linqra up` checks the ports a cluster takes (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[1]


def _settings(tmp_path: Path, http_port: int, dashboard_port: int) -> Settings:
    return Settings(
        data_dir=tmp_path,
        http=HttpSettings(port=http_port),
        ray=RaySettings(dashboard_port=dashboard_port),
    )


@pytest.fixture
def listener() -> Iterator[int]:
    """A port held by a program that accepts connections and closes them (not an HTTP server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(sock.getsockname()[1])
    stop.set()
    sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
    sock.close()
    thread.join(5)


class _Health(BaseHTTPRequestHandler):
    body = b"{}"
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Handler", (_Health,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1]), handler
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _no_cluster_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_GCS_SERVER_PORT", raising=False)


def test_free_ports_pass(tmp_path: Path) -> None:
    settings = _settings(tmp_path, free_port(), free_port())
    assert taken_port_message(settings) is None
    check_ports_free(settings)  # returns


def test_a_port_another_program_holds_is_named_with_its_setting(
    tmp_path: Path, listener: int
) -> None:
    settings = _settings(tmp_path, listener, free_port())
    with pytest.raises(SystemExit) as exited:
        check_ports_free(settings)
    assert exited.value.code == (
        f"Port :{listener} for the gateway is in use by another program (LINQRA_HTTP__PORT to change)"
    )


def test_a_running_linqra_is_recognised_by_its_health_answer(
    tmp_path: Path, http_server: tuple[int, type[_Health]]
) -> None:
    port, handler = http_server
    settings = _settings(tmp_path, port, free_port())
    handler.body = b'{"status":"ok","version":"0.1.0","checks":{"store":"ok","runner":"ok"}}'
    expected = f"Linqra is already running on :{port} (LINQRA_HTTP__PORT to change)"
    assert taken_port_message(settings) == expected
    # a degraded Linqra (503) is still Linqra
    handler.status = 503
    handler.body = json.dumps(
        {"status": "degraded", "version": "0.1.0", "checks": {"store": "error: StoreError"}}
    ).encode()
    assert taken_port_message(settings) == expected
    # another HTTP server on the port is not
    handler.status, handler.body = 200, b'{"status": "ok"}'
    assert taken_port_message(settings) == (
        f"Port :{port} for the gateway is in use by another program (LINQRA_HTTP__PORT to change)"
    )


def test_the_ray_dashboard_port_is_checked(tmp_path: Path, listener: int) -> None:
    settings = _settings(tmp_path, free_port(), listener)
    assert taken_port_message(settings) == (
        f"Port :{listener} for the Ray dashboard is in use by another program "
        "(LINQRA_RAY__DASHBOARD_PORT to change)"
    )


def test_a_pinned_gcs_port_is_checked(
    tmp_path: Path, listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_GCS_SERVER_PORT", str(listener))
    settings = _settings(tmp_path, free_port(), free_port())
    assert taken_port_message(settings) == (
        f"Port :{listener} for Ray's GCS is in use by another program (RAY_GCS_SERVER_PORT to change)"
    )


def test_a_taken_ray_agent_port_is_a_warning_not_a_refusal(
    tmp_path: Path,
    listener: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ray's dashboard agent port is fixed (52365); taken, the new cluster only runs no jobs."""
    monkeypatch.setattr(ports, "RAY_DASHBOARD_AGENT_PORT", listener)
    settings = _settings(tmp_path, free_port(), free_port())
    check_ports_free(settings)  # goes on
    assert capsys.readouterr().err == (
        f"Warning: port :{listener} (Ray's dashboard agent, which runs jobs) is taken, probably "
        "by another Ray cluster: `ray job submit` will not work on this one (stop the other, or "
        "join it with --address)\n"
    )
    assert ports.agent_port_warning(settings, address="auto") is None
    monkeypatch.setattr(ports, "RAY_DASHBOARD_AGENT_PORT", free_port())
    assert ports.agent_port_warning(settings) is None


def test_joining_a_cluster_checks_nothing(
    tmp_path: Path, listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, listener, listener)
    assert fixed_ports(settings, address="auto") == []
    assert taken_port_message(settings, address="127.0.0.1:6380") is None
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6380")
    assert taken_port_message(settings) is None


def test_a_port_left_in_time_wait_is_free() -> None:
    """Connections a stopped server leaves behind (TIME_WAIT) do not make its port taken."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = int(server.getsockname()[1])
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()  # the server side closes first: its end goes to TIME_WAIT
    client.close()
    server.close()
    assert port_is_free("127.0.0.1", port)


def test_linqra_up_on_a_taken_port_prints_one_line(tmp_path: Path, listener: int) -> None:
    """The real command, as `make run` runs it: one line, no traceback, exit 1, no Ray started."""
    env = {
        **os.environ,
        "LINQRA_HTTP__PORT": str(listener),
        "LINQRA_RAY__DASHBOARD_PORT": str(free_port()),
        "LINQRA_DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run(
        [sys.executable, "-m", "deployments.cli", "up"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr == (
        f"Port :{listener} for the gateway is in use by another program (LINQRA_HTTP__PORT to change)\n"
    )
    assert not (tmp_path / "data").exists()  # it stopped before doing anything
