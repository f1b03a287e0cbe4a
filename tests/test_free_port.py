"""``free_port`` hands out ports a slow-starting server can still bind: outside the kernel's
ephemeral range (an outgoing connection could be given one from it meanwhile), never one that
is taken, and not the same one twice in a row within a process."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from linqra.testing import servers
from linqra.testing.servers import free_port


def _ephemeral() -> range:
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    return range(low, high + 1)


def test_ports_are_outside_the_ephemeral_range_and_bindable() -> None:
    ephemeral = _ephemeral()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert not [p for p in ports if p in ephemeral]
    for port in ports[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # raises if it were taken


def test_a_taken_port_is_skipped() -> None:
    upcoming = free_port() + 1  # the cursor walks its slice in order
    if upcoming not in servers._slice():
        upcoming = free_port() + 1
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", upcoming))
        holder.listen()
        assert free_port() != upcoming


def test_each_xdist_worker_has_its_own_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    slices = []
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        slices.append(set(servers._slice()))
    assert not (slices[0] & slices[1]) and not (slices[1] & slices[2])
