"""Benchmarks of authentication and rate limits (issue 11).

    python -m benchmarks.auth b12 [REQUESTS] [--redis] [--profile]   # default 2000 a round
    python -m benchmarks.auth b13 [HITS]                              # default 5000

B12 Authenticated request overhead: one team-scoped read (``GET /v1/workflows/{id}`` of an
    existing workflow) through the real HTTP app — uvicorn (uvloop, httptools, no access log) on
    a loopback port, one process each, serving ``deployments.app.create_app(settings=...)`` with
    the embedded defaults (SQLite store) — three ways: (a) header mode (``X-Team-Id``), (b) OIDC
    mode with an RS256 access token from a real OpenID provider (:mod:`linqra.testing.oidc`,
    node-oidc-provider), (c) an API key (``X-API-Key: lq_…``) made through ``POST /v1/api-keys``,
    on the OIDC-mode server. Per mode: requests/s and p50/p99 with 8 concurrent clients (aiohttp,
    keep-alive) and p50/p99 one request at a time, over 6 rounds whose mode order rotates (the
    machine's load drifts; every mode sees the same drift); ratios (a)/(b), (a)/(c). Rate
    limits are on, with amounts no request reaches, so every decision is made and none denies;
    ``--redis`` holds them in a redis-server the benchmark starts (production), else
    ``memory://`` (embedded). Where the time goes: each auth step timed alone in this process
    (JWT verify, the stored-membership lookup, an API-key check, a rate-limit decision, a store
    read for scale) and, with ``--profile``, py-spy sampling the thread that holds the GIL in
    each server under each mode's load: milliseconds per request in each named step, and the
    functions whose own time grew most over header mode.

B13 Rate-limit decision cost: ``RateLimiter.hit`` (``linqra/ratelimit.py``) against a
    redis-server the benchmark starts, HITS sequential decisions and HITS decisions from 8
    concurrent tasks (keys spread over 1,000 API-key ids), p50/p99 per decision and decisions/s;
    the same against ``memory://`` in the same run as the baseline, and one Redis ``PING`` (one
    round trip) for scale. Correctness across processes: two spawned OS processes, each making
    1,000 attempts on one 1,000/hour limit from 4 tasks — allowed in total through one
    redis-server (should be 1,000) and with ``memory://`` (2,000: per process). Its code is
    :mod:`benchmarks._ratelimit_cost`.

Results are printed and merged into benchmarks/results/auth.json (other keys are kept).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks._ratelimit_cost import b13
from benchmarks._servers import app_server
from benchmarks._support import Stacks, git, parse_stacks, percentile, pyspy_binary, uptime
from linqra.ratelimit import Rule

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONCURRENCY = 8


# -- B12: authenticated request overhead -------------------------------------------------------
B12_TEAM = "bench"
B12_ROUNDS = 6  # a multiple of 3: each mode goes first, second and third equally often
B12_SEQUENTIAL = 400  # one-at-a-time requests per mode and round
UNREACHED = "1000000000/minute"  # rate limits no request reaches: each decision made, none denies
MODES = ("header", "jwt", "api_key")


def _b12_settings(data_dir: Path, cache_url: str, oidc: Any = None) -> Any:
    from linqra.config import AuthSettings, RateLimitSettings, Settings

    auth = AuthSettings(mode="oidc", oidc=oidc) if oidc is not None else AuthSettings()
    limits_ = RateLimitSettings(api_key=UNREACHED, team=UNREACHED)
    return Settings(
        data_dir=data_dir, cache_url=cache_url, auth=auth, rate_limits=limits_
    ).portable()


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str], body: Any
) -> dict[str, Any]:
    async with session.request(method, url, headers=headers, json=body) as response:
        data = await response.json()
        if response.status >= 300:
            raise RuntimeError(f"{method} {url}: {response.status} {data}")
        return dict(data)


async def _load(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], total: int, clients: int
) -> tuple[list[float], float]:
    """``total`` GETs of ``url`` from ``clients`` concurrent clients: latencies (ms), seconds."""
    latencies: list[float] = []

    async def client(n: int) -> None:
        for _ in range(n):
            t0 = time.perf_counter()
            async with session.get(url, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"GET {url}: {response.status} {await response.text()}")
            latencies.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(client(total // clients) for _ in range(clients)))
    return latencies, time.perf_counter() - t0


def _latency(latencies: list[float]) -> dict[str, Any]:
    return {
        "requests": len(latencies),
        "p50_ms": round(percentile(latencies, 0.5), 3),
        "p99_ms": round(percentile(latencies, 0.99), 3),
    }


async def _measure(
    targets: dict[str, tuple[str, dict[str, str]]], per_round: int, rounds: int
) -> dict[str, Any]:
    """Every mode, ``rounds`` times, the order rotating: concurrent, then one at a time."""
    sessions = {
        mode: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY))
        for mode in targets
    }
    concurrent: dict[str, list[float]] = {m: [] for m in targets}
    sequential: dict[str, list[float]] = {m: [] for m in targets}
    elapsed: dict[str, list[float]] = {m: [] for m in targets}
    answered: dict[str, list[int]] = {m: [] for m in targets}
    try:
        for mode, (url, headers) in targets.items():  # warm-up: connections, keys, caches
            await _load(sessions[mode], url, headers, 400, CONCURRENCY)
        order = list(targets)
        for r in range(rounds):
            for mode in order[r % len(order) :] + order[: r % len(order)]:
                url, headers = targets[mode]
                latencies, seconds = await _load(
                    sessions[mode], url, headers, per_round, CONCURRENCY
                )
                concurrent[mode] += latencies
                elapsed[mode].append(seconds)
                answered[mode].append(len(latencies))
                latencies, _ = await _load(sessions[mode], url, headers, B12_SEQUENTIAL, 1)
                sequential[mode] += latencies
    finally:
        for session in sessions.values():
            await session.close()
    out: dict[str, Any] = {f"concurrent_{CONCURRENCY}": {}, "sequential": {}}
    for mode in targets:
        out[f"concurrent_{CONCURRENCY}"][mode] = {
            **_latency(concurrent[mode]),
            "requests_per_s": round(len(concurrent[mode]) / sum(elapsed[mode])),
            "requests_per_s_by_round": [
                round(n / s) for n, s in zip(answered[mode], elapsed[mode], strict=True)
            ],
        }
        out["sequential"][mode] = _latency(sequential[mode])
    return out


def _ratios(figures: dict[str, Any]) -> dict[str, Any]:
    """Throughput of (a) over (b) and (c) — the loss factor — and the p50 each adds."""
    conc, seq = figures[f"concurrent_{CONCURRENCY}"], figures["sequential"]
    out: dict[str, Any] = {}
    for mode in ("jwt", "api_key"):
        loss = conc["header"]["requests_per_s"] / conc[mode]["requests_per_s"]
        added = seq[mode]["p50_ms"] - seq["header"]["p50_ms"]
        out[mode] = {
            "throughput_loss_x": round(loss, 3),
            "p50_added_ms_sequential": round(added, 3),
            f"p50_added_ms_concurrent_{CONCURRENCY}": round(
                conc[mode]["p50_ms"] - conc["header"]["p50_ms"], 3
            ),
            "meets_target": loss <= 1.05 and added <= 0.5,
        }
    return out


async def _components(oidc: Any, token: str, cache_url: str, data_dir: Path) -> dict[str, Any]:
    """Each step of authenticating a request, alone in this process: median µs of 2,000."""
    from linqra.auth.directory import TeamDirectory
    from linqra.auth.keys import ApiKeys
    from linqra.auth.oidc import OidcVerifier
    from linqra.auth.principal import Role
    from linqra.ratelimit import RateLimiter
    from linqra.store import open_store

    async def median_us(fn: Any, n: int = 2000) -> float:
        for _ in range(50):
            await fn()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            await fn()
            times.append((time.perf_counter() - t0) * 1e6)
        return round(percentile(times, 0.5), 1)

    store = open_store(f"sqlite:///{data_dir / 'components.db'}")
    directory, keys = TeamDirectory(store), ApiKeys(store, b"p" * 32, cache_seconds=2.0)
    await directory.init()
    await keys.init()
    issued = await keys.issue(B12_TEAM, {"name": "k"}, creator_role=Role.ADMIN, created_by="b")
    await store.insert("workflows", B12_TEAM, {"id": "w", "name": "w"})
    verifier = OidcVerifier(oidc)
    limiter = RateLimiter.open(cache_url)
    rule = Rule("team", UNREACHED)
    try:
        return {
            "jwt_verify_us": await median_us(lambda: verifier.verify(token)),
            "stored_memberships_lookup_us": await median_us(
                lambda: directory.memberships("user-b12")
            ),
            "api_key_check_cached_us": await median_us(lambda: keys.check(issued.key)),
            "rate_limit_decision_us": await median_us(lambda: limiter.hit(rule, B12_TEAM)),
            "store_get_us_for_scale": await median_us(
                lambda: store.get("workflows", B12_TEAM, "w")
            ),
        }
    finally:
        await verifier.aclose()
        await limiter.close()
        await store.close()


PROFILE_RATE = 250  # samples a second
PROFILE_STEPS = {  # step → (qualified function, file) of a frame on the stack while it runs
    "auth dependency, all of it": ("principal", "deployments/auth.py"),
    "JWT verify": ("OidcVerifier.verify", "linqra/auth/oidc.py"),
    "stored-membership lookup, event loop side": ("TeamDirectory.memberships", "linqra/auth/"),
    "API key check": ("ApiKeys.check", "linqra/auth/keys.py"),
    "rate-limit decisions": (None, "linqra/ratelimit.py"),
    "audit middleware": ("AuditTrail._record", "deployments/auth.py"),
    "the route (get_workflow)": ("get_workflow", "deployments/routers/workflows.py"),
    "store reads, event loop side": ("SQLiteStore._run", "linqra/store/sqlite.py"),
    "store reads, worker threads": ("SQLiteStore._run.<locals>.read", "linqra/store/sqlite.py"),
}


def _sample(pid: int, seconds: int, url: str, headers: dict[str, str]) -> tuple[Stacks, int]:
    """py-spy's stacks of the server ``pid`` while 8 clients read ``url``, and how many reads
    were answered meanwhile. Only the thread holding the GIL is sampled (``--gil``): the time a
    request holds the one core a Python process can use, which is what bounds its throughput
    (SQLite's own C work and the event loop's waiting release the GIL and are not counted)."""
    spy = pyspy_binary()
    out = Path(tempfile.mkdtemp(prefix="b12-spy-")) / "stacks.txt"
    command = [spy, "record", "--pid", str(pid), "--duration", str(seconds), "--gil"]
    command += ["--rate", str(PROFILE_RATE), "--format", "raw", "--output", str(out)]

    async def drive() -> int:
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as session:
            await _load(session, url, headers, 200, CONCURRENCY)
            record = await asyncio.create_subprocess_exec(
                *command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            answered = 0  # from py-spy's start to its end (attaching takes milliseconds)
            while record.returncode is None:
                answered += len((await _load(session, url, headers, 80, CONCURRENCY))[0])
            _, error = await record.communicate()
            if record.returncode != 0 or not out.is_file():
                raise RuntimeError(f"py-spy failed ({record.returncode}): {error[-500:]!r}")
            return answered

    answered = asyncio.run(drive())
    stacks = parse_stacks(out.read_text())
    shutil.rmtree(out.parent, ignore_errors=True)
    return stacks, answered


def _profile(servers: dict[str, tuple[int, str, dict[str, str]]], seconds: int) -> dict[str, Any]:
    """Per mode, the server's GIL time per answered request (ms) in all and in each step of
    :data:`PROFILE_STEPS`, and the functions (self time) whose time grew most over header mode."""
    if not Path(pyspy_binary()).exists():
        return {"skipped": "py-spy is not installed"}
    per_request: dict[str, dict[str, Any]] = {}
    self_ms: dict[str, dict[str, float]] = {}
    for mode, (pid, url, headers) in servers.items():
        stacks, answered = _sample(pid, seconds, url, headers)
        scale = 1000 / PROFILE_RATE / answered  # samples → ms of one request

        def inclusive(fn: str | None, file: str, stacks: Stacks = stacks) -> int:
            return sum(
                n for frames, n in stacks if any((fn in (None, f)) and file in p for f, p in frames)
            )

        leaves: dict[str, float] = {}
        for frames, n in stacks:
            name = "{} ({})".format(*frames[-1])
            leaves[name] = leaves.get(name, 0.0) + n * scale
        self_ms[mode] = leaves
        per_request[mode] = {
            "requests_sampled": answered,
            "gil_ms_per_request": round(sum(n for _, n in stacks) * scale, 3),
            **{step: round(inclusive(*where) * scale, 3) for step, where in PROFILE_STEPS.items()},
        }
    out: dict[str, Any] = {"seconds_per_mode": seconds, "ms_per_request": per_request}
    for mode in ("jwt", "api_key"):
        grew = {name: ms - self_ms["header"].get(name, 0.0) for name, ms in self_ms[mode].items()}
        top = sorted(grew.items(), key=lambda kv: -kv[1])[:12]
        out[f"self_ms_added_{mode}"] = {name: round(ms, 3) for name, ms in top}
    return out


def b12(per_round: int = 2000, *, redis: bool = False, profile: bool = False) -> dict[str, Any]:
    """Header mode, a verified JWT and an API key on one read, in one run (module docstring)."""
    from linqra.config import OidcSettings
    from linqra.testing.oidc import AUDIENCE, OidcClient, OidcProvider
    from linqra.testing.servers import redis_server

    admin = OidcClient(
        "b12",
        sub="user-b12",
        username="b12",
        groups=[f"/teams/{B12_TEAM}/admin"],
        access_token_ttl=3600,  # one token for the whole run, as a client reuses it
    )
    out: dict[str, Any] = {
        "read": "GET /v1/workflows/{id}",
        "server": "uvicorn (uvloop, httptools, no access log), one process per mode of auth, "
        "SQLite store",
        "clients": f"aiohttp keep-alive, {CONCURRENCY} concurrent; and 1 at a time",
        "rounds": B12_ROUNDS,
        "requests_per_round": {
            f"concurrent_{CONCURRENCY}": per_round,
            "sequential": B12_SEQUENTIAL,
        },
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes_in_tree": bool(git("status", "--porcelain", "--untracked-files=no")),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "uptime_before": uptime(),
    }
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="linqra-b12-")))
        cache_url = stack.enter_context(redis_server()) if redis else "memory://"
        out["rate_limits_in"] = "redis-server (--redis)" if redis else "memory://"
        provider = stack.enter_context(OidcProvider([admin]))
        oidc = OidcSettings(issuer=provider.issuer, audience=[AUDIENCE], client_id=AUDIENCE)
        header_url, header_pid = stack.enter_context(
            app_server(_b12_settings(tmp / "a", cache_url))
        )
        oidc_url, oidc_pid = stack.enter_context(
            app_server(_b12_settings(tmp / "b", cache_url, oidc))
        )
        token = provider.token("b12")
        bearer = {"Authorization": f"Bearer {token}"}
        team = {"X-Team-Id": B12_TEAM}
        body = {"name": "b12", "steps": [{"step": 1, "target": "noop"}]}

        async def setup() -> dict[str, tuple[str, dict[str, str]]]:
            async with aiohttp.ClientSession() as http:
                a = await _call(http, "POST", f"{header_url}/v1/workflows", team, body)
                b = await _call(http, "POST", f"{oidc_url}/v1/workflows", bearer, body)
                key = await _call(http, "POST", f"{oidc_url}/v1/api-keys", bearer, {"name": "b12"})
            return {
                "header": (f"{header_url}/v1/workflows/{a['id']}", team),
                "jwt": (f"{oidc_url}/v1/workflows/{b['id']}", bearer),
                "api_key": (f"{oidc_url}/v1/workflows/{b['id']}", {"X-API-Key": key["key"]}),
            }

        targets = asyncio.run(setup())
        out.update(asyncio.run(_measure(targets, per_round, B12_ROUNDS)))
        out["ratios_over_header"] = _ratios(out)
        out["components"] = asyncio.run(_components(oidc, token, cache_url, tmp))
        if profile:
            pids = {"header": header_pid, "jwt": oidc_pid, "api_key": oidc_pid}
            out["profile"] = _profile({m: (pids[m], *targets[m]) for m in MODES}, 15)
    out["uptime_after"] = uptime()
    return out


def _b12_summary(result: dict[str, Any]) -> dict[str, Any]:
    """One line of ``B12_runs``: what each run of B12 found."""
    conc = result[f"concurrent_{CONCURRENCY}"]
    return {
        "when": result["when"],
        "uptime_before": result["uptime_before"],
        "requests_per_s": {m: conc[m]["requests_per_s"] for m in MODES},
        "sequential_p50_ms": {m: result["sequential"][m]["p50_ms"] for m in MODES},
        "ratios_over_header": result["ratios_over_header"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.auth")
    parser.add_argument("which", nargs="?", default="b13", choices=["b12", "b13"])
    parser.add_argument("count", nargs="?", type=int, help="B12 requests a round, B13 hits")
    parser.add_argument("--redis", action="store_true", help="B12: rate limits in Redis")
    parser.add_argument("--profile", action="store_true", help="B12: py-spy on the servers")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    path = RESULTS / "auth.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    if args.which == "b12":
        name = "B12_redis" if args.redis else "B12"
        results[name] = b12(args.count or 2000, redis=args.redis, profile=args.profile)
        runs = previous.get(f"{name}_runs", [])
        results[f"{name}_runs"] = [*runs, _b12_summary(results[name])]  # every run, kept
    else:
        results["B13"] = b13(*([args.count] if args.count else []))
    print(json.dumps(results, indent=2), flush=True)
    RESULTS.mkdir(exist_ok=True)
    previous.update(results)
    path.write_text(json.dumps(previous, indent=2) + "\n")


if __name__ == "__main__":
    main()
