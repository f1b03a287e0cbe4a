"""Benchmark B22 of the Python client (issue 14): what ``linqra_client`` adds over raw ``httpx``.

    python -m benchmarks.client [--calls 500]

Against the real HTTP app (``create_app`` under uvicorn in its own process, embedded profile,
header mode) on loopback, one run, side by side and interleaved (A, B, A, B, …) so that both see
the same machine:

(a) a read: ``client.workflows.get(id)`` (validated id, request, typed ``Workflow`` model)
    against ``httpx.Client.get(...).json()`` on one kept-alive connection; p50 and p95 per call
    and the ratio of the p50s.
(b) a list of 1,000 workflows: the client's pager (10 pages of 100, each item a model) against
    the same 10 pages with raw ``httpx``.
(c) a streamed chat reply from the offline model: time to the last event through
    ``client.assistants.chat(...)`` (typed events) against ``httpx-sse`` by hand.

Results are printed and written to benchmarks/results/client.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from benchmarks._servers import app_server
from benchmarks._support import git, uptime

RESULTS = Path(__file__).resolve().parent / "results" / "client.json"
TEAM = "bench"


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _pair(calls: int, ours: Callable[[], Any], raw: Callable[[], Any]) -> dict[str, Any]:
    times: dict[str, list[float]] = {"client": [], "httpx": []}
    for _ in range(calls):
        for name, fn in (("client", ours), ("httpx", raw)):
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1000)
    out = {
        name: {"p50_ms": round(statistics.median(t), 3), "p95_ms": round(_pct(t, 0.95), 3)}
        for name, t in times.items()
    }
    out["ratio_p50"] = round(out["client"]["p50_ms"] / out["httpx"]["p50_ms"], 3)
    return out


def run(calls: int) -> dict[str, Any]:
    from linqra.config import Settings
    from linqra_client import Linqra

    with tempfile.TemporaryDirectory() as tmp, app_server(Settings(data_dir=Path(tmp))) as (url, _):
        client = Linqra(url, team=TEAM)
        raw = httpx.Client(base_url=url, headers={"X-Team-Id": TEAM}, timeout=60)
        made = [
            client.workflows.create(name=f"w{i}", steps=[{"step": 1, "target": "noop"}])
            for i in range(1000)
        ]
        wf = made[0].id
        read = _pair(
            calls, lambda: client.workflows.get(wf), lambda: raw.get(f"/v1/workflows/{wf}").json()
        )

        def raw_pages() -> int:
            n, offset = 0, 0
            while offset is not None:
                body = raw.get("/v1/workflows", params={"limit": 100, "offset": offset}).json()
                n += len(body["items"])
                offset = body["next_offset"]
            return n

        listing = _pair(
            max(5, calls // 50), lambda: sum(1 for _ in client.workflows.list(limit=100)), raw_pages
        )
        assistant = client.assistants.create(name="b", status="ACTIVE").id

        def raw_chat() -> None:
            body = {"message": "a question about streaming", "stream": True}
            with connect_sse(raw, "POST", f"/v1/assistants/{assistant}/chat", json=body) as source:
                for sse in source.iter_sse():
                    json.loads(sse.data)

        chat = _pair(
            max(5, calls // 10),
            lambda: client.assistants.chat(assistant, "a question about streaming").until_done(),
            raw_chat,
        )
        client.close()
        raw.close()
    return {"read": read, "list_1000": listing, "chat_stream": chat}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.client")
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": git("rev-parse", "--short", "HEAD"),
        "uptime_before": uptime(),
        "calls": args.calls,
        **run(args.calls),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
