"""B16 of :mod:`benchmarks.chat` — chats at once: errors, the gaps between a client's deltas,
the CPU each process used, against as many streams read from the fake directly; then chats cut
and resumed with ``Last-Event-ID``; with ``--profile``, where the app's GIL time per delta goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from benchmarks._chat_client import (
    TEAM,
    TERMINAL,
    Api,
    Chat,
    raw_stream,
    read_events,
    session,
    stats,
)
from benchmarks._support import Stacks, parse_stacks, pyspy_binary

__all__ = ["b16"]


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system, every thread) each process has used so far."""
    import psutil  # type: ignore[import-untyped]

    return {role: sum(psutil.Process(pid).cpu_times()[:2]) for role, pid in pids.items()}


def _cpu_since(pids: dict[str, int], before: dict[str, float], wall: float, deltas: int) -> Any:
    """Per process since ``before``: cores kept busy over ``wall`` seconds, CPU ms per delta."""
    used = {role: seconds - before[role] for role, seconds in _cpu(pids).items()}
    return {
        role: {
            "cores_busy": round(s / wall, 2),
            "cpu_ms_per_delta": round(s * 1000 / deltas, 3) if deltas else None,
        }
        for role, s in used.items()
    }


# -- where a streamed delta's time goes (B16 --profile) ---------------------------------------
PROFILE_RATE = 100  # samples a second
PROFILE_STEPS = {  # step → (function, file) of a frame on the stack while it runs
    "the turns (Turn.run)": ("Turn.run", "turn.py"),
    "— the provider's stream through the openai SDK (OpenAIModel.request_stream)": (
        "OpenAIModel.request_stream",
        "openai.py",  # py-spy names some of linqra's files without their folder
    ),
    "— deltas released (Turn._release: run log appends, partial saves)": (
        "Turn._release",
        "turn.py",
    ),
    "the SSE responses (sse-starlette, the route's stream, run log reads, writes)": (
        None,
        "sse_starlette/",
    ),
    "— uvicorn writing to the socket (RequestResponseCycle.send)": (
        "RequestResponseCycle.send",
        "uvicorn/",
    ),
    "HTTP requests up to their response (middlewares, auth, routes)": (
        "RequestResponseCycle.run_asgi",
        "uvicorn/",
    ),
    "— chat start (ChatService.send)": ("ChatService.send", "chat.py"),
    "heartbeats of running replies (Turn._heartbeat)": ("Turn._heartbeat", "turn.py"),
    "store calls, event loop side": (None, "linqra/store/sqlite.py"),
    "SQLite writer thread (group commit)": ("GroupCommitWriter._loop", "linqra/store/"),
}


@contextlib.asynccontextmanager
async def _profile(pid: int, into: dict[str, Any]) -> AsyncIterator[None]:
    """py-spy on ``pid`` for the ``with`` block (only the thread holding the GIL: the time that
    bounds one process's throughput; each sample pauses the process for a moment, which keeps
    the stacks whole); its stacks go to ``into["stacks"]``, py-spy's raw output stays in
    ``into["raw"]`` (a file under the temporary directory) for a closer look."""
    spy = pyspy_binary()
    out = Path(tempfile.mkdtemp(prefix="b16-spy-")) / "stacks.txt"
    command = [spy, "record", "--pid", str(pid), "--gil", "--format", "raw"]
    command += ["--rate", str(PROFILE_RATE), "--output", str(out)]
    record = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    await asyncio.sleep(0.5)  # attached
    try:
        yield
    finally:
        record.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
        await record.wait()
        stacks = parse_stacks(out.read_text()) if out.is_file() else []
        into["stacks"], into["raw"] = stacks, str(out)


def _where(stacks: Stacks, deltas: int) -> dict[str, Any]:
    """GIL milliseconds per delta: in all, in each step of :data:`PROFILE_STEPS` (inclusive),
    and the 15 functions with the most time of their own."""
    scale = 1000 / PROFILE_RATE / max(deltas, 1)

    def inclusive(fn: str | None, file: str) -> int:
        return sum(
            n for frames, n in stacks if any(fn in (None, f) and file in p for f, p in frames)
        )

    own: dict[str, float] = {}
    for frames, n in stacks:
        name = "{} ({})".format(*frames[-1])
        own[name] = own.get(name, 0.0) + n * scale
    return {
        "gil_ms_per_delta": round(sum(n for _, n in stacks) * scale, 4),
        "steps": {
            step: round(inclusive(*where) * scale, 4) for step, where in PROFILE_STEPS.items()
        },
        "self_ms_per_delta": {
            k: round(v, 4) for k, v in sorted(own.items(), key=lambda kv: -kv[1])[:15]
        },
    }


# -- B16 ---------------------------------------------------------------------------------------
def _gaps(times: list[float]) -> list[float]:
    return [(b - a) * 1000 for a, b in itertools.pairwise(times)]


def _error(chat: Chat | BaseException) -> str | None:
    if isinstance(chat, BaseException):
        return type(chat).__name__
    if chat.status != 200:
        return f"status {chat.status}"
    return None if chat.ended == "run.completed" else f"ended with {chat.ended}"


def _sample(chat: Chat | BaseException) -> Any:
    if isinstance(chat, BaseException):
        return repr(chat)[:300]
    return chat.events[-1][3][:300] if chat.events else f"status {chat.status}"


async def b16(
    api_url: str,
    fake: str,
    pids: dict[str, int],
    chats: int,
    pace_ms: int,
    words: int,
    resumes: int = 100,
    *,
    profile: bool = False,
) -> dict[str, Any]:
    model = f"slow-{pace_ms}-{words}"
    async with session() as http:
        api = Api(http, api_url)
        assistant = await api.assistant("b16", model)
        await Chat(api, assistant, "warm up").run()

        async def one(i: int) -> Chat | BaseException:
            try:
                return await Chat(api, assistant, f"chat {i}").run()
            except Exception as exc:  # a broken connection: an error to count, not to raise
                return exc

        profiled: dict[str, Any] = {}
        async with _profile(pids["app"], profiled) if profile else contextlib.nullcontext():
            load, cpu, t0 = os.getloadavg()[0], _cpu(pids), time.perf_counter()
            done = await asyncio.gather(*(one(i) for i in range(chats)))
            wall = time.perf_counter() - t0
        ok = [c for c in done if isinstance(c, Chat) and not _error(c)]
        deltas = sum(len(c.deltas) for c in ok)
        cpu_ours = _cpu_since(pids, cpu, wall, deltas)
        errors: dict[str, int] = {}
        for kind in filter(None, map(_error, done)):
            errors[kind] = errors.get(kind, 0) + 1

        cpu, t0 = _cpu(pids), time.perf_counter()
        direct = await asyncio.gather(
            *(raw_stream(http, fake, model, f"chat {i}") for i in range(chats)),
            return_exceptions=True,
        )
        direct_wall = time.perf_counter() - t0
        direct_ok = [d for d in direct if isinstance(d, list)]
        cpu_direct = _cpu_since(pids, cpu, direct_wall, sum(map(len, direct_ok)))
        out: dict[str, Any] = {
            "model": f"openai:{model} (a word every {pace_ms} ms, {words + 3} content chunks)",
            "chats": chats,
            "load_average_1min_at_start": round(load, 2),
            "errors": sum(errors.values()),
            "errors_by_kind": errors,
            "error_samples": [_sample(c) for c in done if _error(c)][:5],
            "inter_chunk_gap": stats([g for c in ok for g in _gaps([e[0] for e in c.deltas])]),
            "baseline_direct_inter_chunk_gap": stats([g for d in direct_ok for g in _gaps(d)]),
            "baseline_direct_errors": chats - len(direct_ok),
            "first_token_under_load": stats([c.at("message.delta") for c in ok]),
            "wall_s": round(wall, 2),
            "baseline_direct_wall_s": round(direct_wall, 2),
            "deltas_per_s": round(deltas / wall),
            "cpu": cpu_ours,
            "baseline_direct_cpu": cpu_direct,
        }
        gap, base = out["inter_chunk_gap"], out["baseline_direct_inter_chunk_gap"]
        if profile:
            out["profile_of_the_app"] = _where(profiled["stacks"], deltas)
            out["profile_of_the_app"]["py_spy_raw_output"] = profiled["raw"]
        out["gap_p99_ratio_over_baseline"] = round(gap["p99_ms"] / (base["p99_ms"] or 1), 2)
        out["meets_target"] = out["errors"] == 0 and gap["p99_ms"] <= 50
        out["resume"] = await _resume(api, assistant, resumes, words)
    return out


async def _resume(api: Api, assistant: str, n: int, words: int) -> dict[str, Any]:
    """``n`` chats at once, each cut after a few words and resumed with ``Last-Event-ID``."""
    rng = random.Random(16)
    cut_after = [rng.randint(2, words // 2) for _ in range(n)]

    async def one(i: int) -> dict[str, Any]:
        chat = await Chat(api, assistant, f"resume {i}").run(cut_after[i], cut=True)
        run = chat.first("run.created")
        path = f"/v1/conversations/{run['conversation_id']}"
        seen = next(e[1] for e in reversed(chat.events) if e[1])  # as EventSource keeps it
        headers = {**TEAM, "Last-Event-ID": seen}
        stream = f"{api.url}{path}/runs/{run['run_id']}/stream"
        async with api.http.get(stream, headers=headers) as response:
            async for event in read_events(response):
                chat.events.append(event)
                if event[2] in TERMINAL:
                    break
        ids = [e[1] for e in chat.events if e[1]]
        text = "".join(json.loads(e[3])["text"] for e in chat.deltas)
        reply = (await api.call("GET", f"{path}/messages"))["items"][-1]
        return {
            "complete": chat.ended == "run.completed",
            "same_text": (text, "completed") == (reply["content"], reply["status"]),
            "no_duplicate": len(ids) == len(set(ids)),
        }

    found = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    results = [r for r in found if isinstance(r, dict)]
    return {
        "streams": n,
        "cut_after_deltas": f"{min(cut_after)}-{max(cut_after)}",
        "complete_and_exact": f"{sum(all(r.values()) for r in results)}/{n}",
        "errors": [repr(r)[:200] for r in found if isinstance(r, BaseException)][:5],
        "incomplete": sum(not r["complete"] for r in results),
        "text_mismatches": sum(not r["same_text"] for r in results),
        "duplicated_events": sum(not r["no_duplicate"] for r in results),
    }
