"""B4: overhead of Linqra's LLM client (registry + routing + usage record + budget) per call,
against the bare ``openai`` SDK calling the same local OpenAI-protocol server, in one run.

    python -m benchmarks.llm

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
from tests.support.fake_openai import FakeOpenAI

CALLS = 200


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


if __name__ == "__main__":
    result = asyncio.run(main())
    print("B4", json.dumps(result))
    out = Path(__file__).resolve().parent / "results" / "b4.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
