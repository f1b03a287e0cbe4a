"""Benchmark B19 of the web console (issue 13), in Debian's Chromium headless through Playwright.

    python -m benchmarks.console [--loads 10] [--steps 500]

Served by the real HTTP app — ``deployments.app.create_app(settings=...)`` under uvicorn in its
own process, embedded profile — on loopback, with the shipped build (``deployments/console_dist``).

(a) First load, cold cache: ``--loads`` times, each in a new browser context (empty cache, no
    storage), ``/console/`` until it is interactive — the Overview heading shown and the first
    API answer (the gateway's health) rendered in it — measured from navigation start in the
    page (``performance.now()``); the bytes transferred (CDP ``Network.loadingFinished``
    ``encodedDataLength``: gzip where the browser took it) and uncompressed, per kind. For scale
    in the same run: the API docs page (``/docs``, Swagger UI) loaded the same way. Targets:
    ≤ 1.5 s, ≤ 500 KB transferred.
(b) A running execution of ``--steps`` steps (DAG mode, all at once: each a ``wait`` of 0.5-4 s
    so they finish at different moments) open on its execution page: frames per second
    (``requestAnimationFrame`` counted in the page) while the timeline follows the run, the
    longest frame, and how many of the steps the page showed finished by the end. Target ≥ 30 fps.

Results are printed and merged into benchmarks/results/console.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks._servers import app_server
from benchmarks._support import git, uptime

RESULTS = Path(__file__).resolve().parent / "results" / "console.json"
TEAM = {"X-Team-Id": "bench-console"}
CHROMIUM = "/usr/bin/chromium"


def _settings(data_dir: Path) -> Any:
    from linqra.config import Settings

    return Settings(data_dir=data_dir).portable()


def _load(browser: Any, url: str, ready: str) -> dict[str, Any]:
    """One cold load of ``url`` until the selector ``ready`` is visible."""
    context = browser.new_context()
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    sizes: dict[str, dict[str, Any]] = {}
    kinds: dict[str, str] = {}
    cdp.on("Network.responseReceived", lambda e: kinds.__setitem__(e["requestId"], e["type"]))
    cdp.on(
        "Network.loadingFinished",
        lambda e: sizes.__setitem__(e["requestId"], {"bytes": e["encodedDataLength"]}),
    )
    page.add_init_script(
        "window.addEventListener('DOMContentLoaded', () => { window.__dcl = performance.now(); });"
    )
    page.goto(url, wait_until="commit")
    page.locator(ready).first.wait_for(state="visible", timeout=30_000)
    interactive = page.evaluate("() => performance.now()")
    page.wait_for_load_state("networkidle")
    decoded = page.evaluate(
        "() => performance.getEntriesByType('resource').reduce((n, e) => n + e.decodedBodySize,"
        " 0) + performance.getEntriesByType('navigation')[0].decodedBodySize"
    )
    context.close()
    by_kind: dict[str, int] = {}
    for request_id, size in sizes.items():
        kind = kinds.get(request_id, "Other")
        by_kind[kind] = by_kind.get(kind, 0) + size["bytes"]
    return {
        "interactive_ms": round(interactive, 1),
        "transferred_bytes": sum(s["bytes"] for s in sizes.values()),
        "transferred_by_kind": by_kind,
        "decoded_bytes": int(decoded),
        "requests": len(sizes),
    }


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 1),
        "max": round(ordered[-1], 1),
        "min": round(ordered[0], 1),
    }


def first_load(browser: Any, api: str, loads: int) -> dict[str, Any]:
    console = [
        _load(browser, f"{api}/console/", "[data-testid=gateway-status]") for _ in range(loads)
    ]
    docs = [_load(browser, f"{api}/docs", ".swagger-ui .info") for _ in range(loads)]
    out = {
        "console": {
            "interactive_ms": _stats([r["interactive_ms"] for r in console]),
            "transferred_kb": round(console[-1]["transferred_bytes"] / 1024, 1),
            "transferred_by_kind_kb": {
                k: round(v / 1024, 1) for k, v in console[-1]["transferred_by_kind"].items()
            },
            "uncompressed_kb": round(console[-1]["decoded_bytes"] / 1024, 1),
            "requests": console[-1]["requests"],
        },
        "baseline_swagger_docs": {
            "interactive_ms": _stats([r["interactive_ms"] for r in docs]),
            "transferred_kb": round(docs[-1]["transferred_bytes"] / 1024, 1),
            "requests": docs[-1]["requests"],
        },
    }
    c = out["console"]
    out["meets_target"] = c["interactive_ms"]["p50"] <= 1500 and c["transferred_kb"] <= 500
    return out


def timeline(browser: Any, api: str, steps: int) -> dict[str, Any]:
    rng = random.Random(19)
    body = {
        "name": f"{steps} steps at once",
        "mode": "dag",
        "steps": [
            {"step": i, "target": "wait", "params": {"seconds": round(rng.uniform(0.5, 4.0), 2)}}
            for i in range(1, steps + 1)
        ],
    }
    with httpx.Client(base_url=api, headers=TEAM, timeout=60) as http:
        wf = http.post("/v1/workflows", json=body).raise_for_status().json()["id"]
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        context.add_init_script(f"localStorage.setItem('linqra.team', {TEAM['X-Team-Id']!r});")
        page = context.new_page()
        page.goto(f"{api}/console/executions")  # the app loaded before the run starts
        page.get_by_role("heading").first.wait_for()
        ex = http.post(f"/v1/workflows/{wf}/execute", json={}).raise_for_status().json()["id"]
        page.goto(f"{api}/console/executions/{ex}")
        page.get_by_role("heading").first.wait_for()
        page.evaluate(
            """() => { window.__frames = []; let last = performance.now();
                 const tick = (now) => { window.__frames.push(now - last); last = now;
                   if (!window.__stop) requestAnimationFrame(tick); };
                 requestAnimationFrame(tick); }"""
        )
        t0 = time.monotonic()
        while True:
            status = http.get(f"/v1/executions/{ex}").json()["status"]
            if status not in ("PENDING", "RUNNING") or time.monotonic() - t0 > 120:
                break
            page.wait_for_timeout(250)  # the benchmark samples; the page runs on its own
        wall = time.monotonic() - t0
        frames: list[float] = page.evaluate(
            "() => { window.__stop = true; return window.__frames; }"
        )
        page.get_by_text("COMPLETED").first.wait_for()
        context.close()
    seconds = sum(frames) / 1000
    return {
        "steps": steps,
        "execution_status": status,
        "watched_s": round(wall, 2),
        "fps": round(len(frames) / seconds, 1) if seconds else None,
        "frame_ms": {
            "p50": round(statistics.median(frames), 1),
            "p99": round(sorted(frames)[int(len(frames) * 0.99) - 1], 1),
            "max": round(max(frames), 1),
        },
        "meets_target": bool(seconds) and len(frames) / seconds >= 30,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.console")
    parser.add_argument("--loads", type=int, default=10, help="cold loads of each page")
    parser.add_argument("--steps", type=int, default=500, help="steps of the watched execution")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    meta = {
        "server": "uvicorn, one process, embedded profile, loopback",
        "browser": "Debian chromium headless (Playwright)",
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "commit": git("rev-parse", "--short", "HEAD"),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "uptime_before": uptime(),
    }
    with (
        tempfile.TemporaryDirectory(prefix="linqra-console-bench-") as tmp,
        app_server(_settings(Path(tmp))) as (api, _pid),
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        result = {
            **meta,
            "first_load": first_load(browser, api, args.loads),
            "timeline": timeline(browser, api, args.steps),
        }
        browser.close()
    print(json.dumps(result, indent=1))
    saved = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    saved["B19"] = result
    saved.setdefault("B19_runs", []).append(
        {k: result[k] for k in ("when", "commit", "uptime_before")}
        | {
            "interactive_p50_ms": result["first_load"]["console"]["interactive_ms"]["p50"],
            "transferred_kb": result["first_load"]["console"]["transferred_kb"],
            "fps": result["timeline"]["fps"],
        }
    )
    RESULTS.write_text(json.dumps(saved, indent=1) + "\n")


if __name__ == "__main__":
    main()
