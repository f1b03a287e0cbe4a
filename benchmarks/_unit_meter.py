"""Process accounting of :mod:`benchmarks.unit_costs`: this process and its descendants (the
Ray cluster it started, the servers it spawned) by role, their CPU seconds between two moments
and their memory (RSS, USS, PSS) — psutil, per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import psutil  # type: ignore[import-untyped]

__all__ = [
    "MIB",
    "ROLES",
    "CpuMeter",
    "cpu_times",
    "memory",
    "per",
    "processes",
    "role",
    "total_memory",
    "until",
]

MIB = 2**20
ROLES = {  # a Ray worker renames itself "ray::<Actor>.<method>"
    **{f"ray::{cls}": name for cls, name in (
        ("AgentActor", "agents"), ("ChatHostActor", "chat_hosts"),
        ("RunnerActor", "runner"), ("IOStepWorker", "io_pool"),
        ("SupervisorActor", "supervisor"), ("EventBusActor", "bus"),
    )},
    "gcs_server": "gcs", "raylet": "raylet", "redis-server": "redis",
}  # fmt: skip


def role(proc: psutil.Process, named: dict[int, str]) -> str:
    """What a process of this cluster is, by its pid (``named``) or its command line."""
    if proc.pid in named:
        return named[proc.pid]
    try:
        line = " ".join(proc.cmdline())
    except psutil.Error:
        return "gone"
    for marker, name in ROLES.items():
        if marker in line:
            return name
    return "ray_other" if "ray" in line else "other"


def processes(named: dict[int, str] | None = None) -> dict[int, tuple[str, psutil.Process]]:
    """This process and its descendants (the cluster it started, the servers it spawned)."""
    me = psutil.Process()
    named = {me.pid: "driver", **(named or {})}
    return {p.pid: (role(p, named), p) for p in [me, *me.children(recursive=True)]}


def cpu_times(named: dict[int, str]) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) each live process of :func:`processes` has used, by pid."""
    out = {}
    for pid, (name, proc) in processes(named).items():
        with contextlib.suppress(psutil.Error):
            out[pid] = (name, sum(proc.cpu_times()[:2]))
    return out


class CpuMeter:
    """CPU seconds per role used between :meth:`start` and :meth:`stop`; a process born in
    between counts from zero, one that died in between is lost (none should: nothing
    passivates while measured)."""

    def __init__(self, named: dict[int, str] | None = None) -> None:  # pid: role
        self.named = named or {}
        self.before: dict[int, tuple[str, float]] = {}
        self.wall = 0.0

    def start(self) -> CpuMeter:
        self.before, self.wall = cpu_times(self.named), time.perf_counter()
        return self

    def stop(self) -> dict[str, float]:
        self.wall = time.perf_counter() - self.wall
        used: dict[str, float] = {}
        for pid, (name, seconds) in cpu_times(self.named).items():
            start = self.before.get(pid, (name, 0.0))[1]
            used[name] = used.get(name, 0.0) + seconds - start
        used["total"] = sum(used.values())
        return used


def per(used: dict[str, float], n: int, roles: tuple[str, ...] = ()) -> dict[str, float]:
    """CPU milliseconds per unit (``n`` units), in all and for ``roles``."""
    return {f"{r}_ms": round(used.get(r, 0.0) * 1000 / n, 3) for r in ("total", *roles)}


def memory(name: str) -> dict[str, float]:
    """Mean RSS, USS and PSS (MiB) of this cluster's processes of role ``name``, and how many."""
    rows = []
    for got, proc in processes({}).values():
        with contextlib.suppress(psutil.Error):
            if got == name:
                rows.append(proc.memory_full_info())
    if not rows:
        return {"processes": 0}
    kinds = ("rss", "uss", "pss")
    mean = {f"{k}_mib": round(sum(getattr(r, k) for r in rows) / MIB / len(rows), 1) for k in kinds}
    return {"processes": len(rows), **mean}


def total_memory(names: tuple[str, ...]) -> dict[str, float]:
    """Summed RSS/USS/PSS (MiB) of the processes of ``names``."""
    got = [memory(name) for name in names]
    kinds = ("rss_mib", "uss_mib", "pss_mib")
    return {k: round(sum(m.get(k, 0.0) * m["processes"] for m in got), 1) for k in kinds}


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 120.0) -> None:
    """Poll ``check`` (every 50 ms) until it holds; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{check} did not hold within {timeout} s")
        await asyncio.sleep(0.05)
