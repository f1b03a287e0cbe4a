"""B4: overhead of Linqra's LLM client (registry + routing + usage record + budget) per call,
against the bare ``openai`` SDK calling the same local OpenAI-protocol server, in one run.

    python -m benchmarks.llm [b4] [b5]

The server answers after 50 ms (model ``delay-50``). Both sides make 200 sequential calls after a
warm-up; medians and p95 are compared. Linqra's side goes through ``LLMService.complete`` with a
route of one deployment (so the retry loop, breaker and bulkhead are on the path), writes a usage
record to SQLite and reserves/settles a team budget.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from linqra.config import LLMProviderConfig, LLMSettings, RouteConfig, Settings
from linqra.llm.types import Message, ModelSettings
from linqra.system import System
from linqra.testing.fake_openai import FakeOpenAI

CALLS = 200


def _has_content(line: str) -> bool:
    """Whether an SSE line is a chunk carrying text."""
    if not line.startswith("data: ") or line == "data: [DONE]":
        return False
    chunk = json.loads(line[6:])
    return any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or [])


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 2),
    }


async def main() -> dict[str, Any]:
    import openai

    with FakeOpenAI() as fake:
        settings = Settings(
            data_dir=Path(tempfile.mkdtemp(prefix="linqra-b4-")),
            llm=LLMSettings(
                providers={"openai": LLMProviderConfig(kind="openai", base_url=fake.base_url)},
                routes={"bench": RouteConfig(deployments=["openai:delay-50"])},
            ),
        )
        system = await System.open(settings)
        await system.llm.budgets.set("bench", "1000", "day")
        ask = [Message("user", "measure the overhead of one call")]
        bare = openai.AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0)

        async def sdk() -> float:
            t0 = time.perf_counter()
            await bare.chat.completions.create(
                model="delay-50", messages=[{"role": "user", "content": ask[0].content}]
            )
            return time.perf_counter() - t0

        async def ours() -> float:
            t0 = time.perf_counter()
            await system.llm.complete(
                "bench", "bench", ask, ModelSettings(), caller={"type": "bench"}
            )
            return time.perf_counter() - t0

        for _ in range(10):
            await sdk()
            await ours()
        bare_times, our_times = [], []
        for _ in range(CALLS):  # interleaved, so drift hits both sides alike
            bare_times.append(await sdk())
            our_times.append(await ours())
        await bare.close()
        usage = await system.llm.usage.summary("bench", group_by="model")
        await system.close()
    b, o = _stats(bare_times), _stats(our_times)
    return {
        "bare_sdk": b,
        "linqra": o,
        "ratio_p50": round(o["p50_ms"] / b["p50_ms"], 3),
        "added_p50_ms": round(o["p50_ms"] - b["p50_ms"], 2),
        "usage_records": sum(row["calls"] for row in usage),
        "calls": CALLS + 10,
    }


def b5(calls: int = 1000, concurrency: int = 8) -> dict[str, Any]:
    """B5: streamed chat through the gateway — time to first token added over the provider direct
    (p50/p95), and cost-record correctness over ``calls`` streamed calls."""
    import httpx
    import ray
    from ray import serve

    from deployments.gateway import build_app
    from linqra.testing.servers import free_port

    def first_token(
        client: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str]
    ) -> float:
        t0 = time.perf_counter()
        with client.stream("POST", url, json=body, headers=headers) as response:
            response.raise_for_status()
            lines = response.iter_lines()
            for line in lines:
                if _has_content(line):
                    elapsed = time.perf_counter() - t0
                    for _ in lines:  # drain, so the call completes and is accounted
                        pass
                    return elapsed
        raise RuntimeError("no content in the stream")

    from deployments.serve_config import apply_ingress_env

    with FakeOpenAI() as fake:
        settings = Settings(
            data_dir=Path(tempfile.mkdtemp(prefix="linqra-b5-")),
            llm=LLMSettings(
                providers={"openai": LLMProviderConfig(kind="openai", base_url=fake.base_url)}
            ),
        ).portable()
        settings = settings.model_copy(
            update={"ray": settings.ray.model_copy(update={"namespace": "linqra-b5"})}
        )
        apply_ingress_env()  # as `linqra up` does (RAY_SERVE_ENABLE_HA_PROXY=0 opts out)
        ray.init(
            address="local",
            num_cpus=2,
            namespace="linqra-b5",
            include_dashboard=False,
            log_to_driver=False,
        )
        port = free_port()
        serve.start(
            http_options={"host": "127.0.0.1", "port": port},
            logging_config={"enable_access_log": False, "log_level": "WARNING"},
        )
        serve.run(build_app(settings), name="linqra", route_prefix="/")
        gateway = f"http://127.0.0.1:{port}"
        body = {
            "model": "openai:gpt-4o",
            "messages": [{"role": "user", "content": "stream a few words"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        team = {"X-Team-Id": "bench-b5"}
        try:
            with httpx.Client(timeout=30) as client:
                for _ in range(20):  # warm-up
                    first_token(client, f"{gateway}/v1/chat/completions", body, team)
                    first_token(
                        client, f"{fake.base_url}/chat/completions", {**body, "model": "gpt-4o"}, {}
                    )
                direct, through = [], []
                for _ in range(300):  # interleaved
                    direct.append(
                        first_token(
                            client,
                            f"{fake.base_url}/chat/completions",
                            {**body, "model": "gpt-4o"},
                            {},
                        )
                    )
                    through.append(
                        first_token(client, f"{gateway}/v1/chat/completions", body, team)
                    )
            from concurrent.futures import ThreadPoolExecutor

            team_load = {"X-Team-Id": "bench-b5-load"}

            def one(_: int) -> None:
                with httpx.Client(timeout=60) as c:
                    first_token(c, f"{gateway}/v1/chat/completions", body, team_load)

            t0 = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(one, range(calls)))
            load_s = time.perf_counter() - t0
            with httpx.Client(base_url=gateway, headers=team_load, timeout=60) as api:
                rows = api.get("/v1/usage", params={"group_by": "model"}).json()["items"]
        finally:
            serve.shutdown()
            ray.shutdown()
    records = sum(r["calls"] for r in rows)
    unpriced = sum(r["unpriced_calls"] for r in rows)
    d, t = _stats(direct), _stats(through)
    return {
        "ttft_direct": d,
        "ttft_gateway": t,
        "added_ttft_p50_ms": round(t["p50_ms"] - d["p50_ms"], 2),
        "added_ttft_p95_ms": round(t["p95_ms"] - d["p95_ms"], 2),
        "streamed_calls": calls,
        "usage_records": records,
        "missing_records": calls - records,
        "unpriced_or_zero_cost_records": unpriced
        + sum(1 for r in rows if r["cost"] in ("0", "0E-9")),
        "calls_per_s": round(calls / load_s, 1),
    }


if __name__ == "__main__":
    import sys

    which = set(sys.argv[1:]) or {"b4", "b5"}
    results: dict[str, Any] = {}
    if "b4" in which:
        results["B4"] = asyncio.run(main())
        print("B4", json.dumps(results["B4"]), flush=True)
    if "b5" in which:
        results["B5"] = b5()
        print("B5", json.dumps(results["B5"]), flush=True)
    out = Path(__file__).resolve().parent / "results" / "llm.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
