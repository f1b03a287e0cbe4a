"""Benchmarks of chat with assistants (issue 12), each against its baseline in the same run.

    python -m benchmarks.chat [b14 b15 b16] [--redis] [--profile]
                              [--chats 500 --pace-ms 40 --words 40 --resumes 100]   # B16's sizes

Every figure is taken over HTTP from the real app — ``deployments.app.create_app(settings=...)``
under uvicorn (uvloop, httptools, no access log) in its own process, the embedded profile (SQLite
store, Milvus Lite for the collection, run logs in ``memory://``; with ``--redis`` in a
redis-server the benchmark starts) — whose provider is the OpenAI fake
(:mod:`linqra.testing.fake_openai`) in a process of its own, reached through the real ``openai``
SDK. The client is this process: aiohttp, events parsed as they arrive, ``time.perf_counter``.

B14 Added time to first token. (a) An assistant with no tasks: ``POST /v1/assistants/{id}/chat``
    with ``stream`` (a new conversation each time) until the first ``message.delta``; baseline:
    the fake called directly with the openai SDK streaming, until the first chunk with content
    (and, for scale, the fake read with this client's own SSE reader); interleaved, one at a
    time. (b) An assistant with two tasks — each a workflow with one HTTP step to a local server
    that answers after 100 ms — and a collection to search: first token against "slowest task +
    retrieval + 15 ms", the two tasks alone (both at once, ``execute?wait=true``) and the search
    alone (``POST …/search``) measured in the same run, interleaved; and when each event of the
    turn arrived.
B15 Cancel → provider stream closed. 100 replies on a slow model (a word every 20 ms), each
    cancelled after 5 words with ``POST …/runs/{run}/cancel``: the fake's ``closed_at`` (its
    ``time.monotonic()``: the same clock here) minus the moment the cancel was sent; then the
    messages read back (the reply ``cancelled``, its cost > 0). Baseline: the same streams read
    from the fake with the SDK and closed by the client itself (``stream.close()``).
B16 Concurrency. ``--chats`` streaming chats at once on a slow model (a word every ``--pace-ms``):
    errors (a status other than 200, a broken connection, a stream that does not end
    ``run.completed``), the gaps between a client's consecutive ``message.delta`` events, time to
    first token, and the CPU each process used; baseline: as many streams read from the fake
    directly at once, same pace, same reader. Then 100 chats whose connection is cut after a few
    words and resumed with ``Last-Event-ID`` on ``GET …/runs/{run}/stream``: complete when the
    deltas before and after the cut, concatenated, equal the stored reply and no event id came
    twice. With ``--profile``, py-spy samples the app's GIL holder during the chats: milliseconds
    of GIL per delta, in all and by step.

Results are printed and merged into benchmarks/results/chat.json (``B14``…: the last run in
full; ``B14_runs``…: one line per run, all kept; ``_redis`` with ``--redis``; B16 with other
sizes under ``B16_<chats>x-slow-<pace>-<words>-<resumes>resumed``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import itertools
import json
import multiprocessing
import os
import platform
import random
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.auth import Stacks, _frame, _git, _pct, _serve, _uptime

RESULTS = Path(__file__).resolve().parent / "results"
TEAM = {"X-Team-Id": "bench-chat"}
TERMINAL = frozenset({"run.completed", "run.cancelled", "run.failed", "run.interrupted"})
PRICE = {"input": "2.50", "output": "10.00"}  # per million tokens: a cancelled reply costs > 0
Event = tuple[float, str, str, str]  # (perf_counter when read, id, event, data)


# -- servers in their own processes ------------------------------------------------------------
def fake_app() -> Any:
    """The OpenAI fake, plus ``GET /_bench/streams?tag=…``: the ``stream`` record (words sent,
    ``closed_at``) of each streamed request with ``tag`` in one of its messages."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from linqra.testing.fake_openai import fake_openai_app

    requests: list[dict[str, Any]] = []
    app = fake_openai_app(requests)

    async def streams(request: Request) -> JSONResponse:
        tag = request.query_params["tag"]
        return JSONResponse(
            [
                r["stream"]
                for r in requests
                if "stream" in r and any(tag in (m["content"] or "") for m in r["body"]["messages"])
            ]
        )

    app.router.routes.append(Route("/_bench/streams", streams))
    return app


def _serve_asgi(factory: str, port: int) -> None:
    """In a child process: the ASGI app ``module:function()`` under uvicorn."""
    import uvicorn

    module, _, name = factory.partition(":")
    app = getattr(importlib.import_module(module), name)()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextlib.contextmanager
def _process(target: Any, *args: Any) -> Iterator[tuple[str, int]]:
    """``target(*args, port)`` — a server — in its own process; yields its URL and process id.
    A server that exits before it listens fails at once (another session's half-made edit in
    the shared tree, say), not after a timeout."""
    from linqra.testing.servers import free_port

    port = free_port()
    proc = multiprocessing.get_context("spawn").Process(
        target=target, args=(*args, port), daemon=True
    )
    proc.start()
    try:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if not proc.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{getattr(target, '__name__', target)}{args[:1]} did not start")
            time.sleep(0.05)
        assert proc.pid is not None
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()  # SIGTERM: uvicorn shuts down, the app's lifespan closes its system
        proc.join(30)
        if proc.is_alive():
            proc.kill()


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


# -- the client --------------------------------------------------------------------------------
async def _events(response: aiohttp.ClientResponse) -> AsyncIterator[Event]:
    """Each server-sent event of ``response`` when read (sse-starlette ends lines ``\\r\\n``)."""
    fields: dict[str, str] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line and fields:
            now = time.perf_counter()
            yield now, fields.get("id", ""), fields.get("event", ""), fields.get("data", "")
            fields = {}
        elif line and not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


class Api:
    """The app's HTTP API as the benchmark's team; JSON in and out, a non-2xx raises."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.url + path, json=body, headers=TEAM) as answer:
            data = await answer.json()
            if answer.status >= 300:
                raise RuntimeError(f"{method} {path}: {answer.status} {data}")
            return data

    async def assistant(self, name: str, model: str, **body: Any) -> str:
        """A new assistant on ``openai:<model>``, priced so that every reply costs something."""
        await self.call("PUT", f"/v1/models/openai:{model}/price", PRICE)
        body |= {"name": name, "defaultModel": {"provider": "openai", "modelName": model}}
        return str((await self.call("POST", "/v1/assistants", body))["id"])


def _stats(samples_ms: list[float]) -> dict[str, Any]:
    return {
        "n": len(samples_ms),
        "p50_ms": round(_pct(samples_ms, 0.5), 2),
        "p99_ms": round(_pct(samples_ms, 0.99), 2),
        "max_ms": round(max(samples_ms, default=0.0), 2),
    }


class Chat:
    """One streamed chat message: every event with its arrival time, from the request's start."""

    def __init__(self, api: Api, assistant: str, message: str) -> None:
        self.api, self.path = api, f"/v1/assistants/{assistant}/chat"
        self.body = {"message": message, "stream": True}
        self.started, self.status, self.deltas_read = 0.0, 0, 0
        self.events: list[Event] = []

    async def run(self, stop_after_deltas: int | None = None, *, cut: bool = False) -> Chat:
        """Send, then :meth:`read`; with ``cut`` the connection is closed where reading stopped."""
        self.started = time.perf_counter()
        url = self.api.url + self.path
        self.response = await self.api.http.post(url, json=self.body, headers=TEAM)
        self.status = self.response.status
        self.stream = _events(self.response)
        if self.status == 200:
            await self.read(stop_after_deltas)
        if cut or self.status != 200:
            self.response.close()  # the connection itself, not back to the pool
        return self

    async def read(self, stop_after_deltas: int | None = None) -> Chat:
        """Events until a terminal one, or until ``stop_after_deltas`` deltas were read."""
        async for event in self.stream:
            self.events.append(event)
            self.deltas_read += event[2] == "message.delta"
            if event[2] in TERMINAL:
                self.response.release()
                break
            if stop_after_deltas is not None and self.deltas_read >= stop_after_deltas:
                break
        return self

    def first(self, name: str) -> dict[str, Any]:
        return dict(json.loads(next(e[3] for e in self.events if e[2] == name)))

    def at(self, name: str, last: bool = False) -> float:
        """Milliseconds from the request to the first (or last) event ``name``."""
        times = [t for t, _, event, _ in self.events if event == name]
        return (times[-1 if last else 0] - self.started) * 1000

    @property
    def deltas(self) -> list[Event]:
        return [e for e in self.events if e[2] == "message.delta"]

    @property
    def ended(self) -> str | None:
        return self.events[-1][2] if self.events and self.events[-1][2] in TERMINAL else None


def _body(model: str, message: str) -> dict[str, Any]:
    return {"model": model, "stream": True, "messages": [{"role": "user", "content": message}]}


async def _sdk_first_token(sdk: Any, model: str, message: str) -> float:
    """The baseline: the openai SDK streaming from the fake, ms to the first content chunk."""
    t0, first = time.perf_counter(), None
    async for chunk in await sdk.chat.completions.create(**_body(model, message)):
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = (time.perf_counter() - t0) * 1000
    assert first is not None
    return first


async def _raw_stream(http: aiohttp.ClientSession, fake: str, model: str, text: str) -> list[float]:
    """The fake read directly with this client's reader: when each content chunk arrived."""
    times = []
    async with http.post(f"{fake}/v1/chat/completions", json=_body(model, text)) as response:
        response.raise_for_status()
        async for t, _, _, data in _events(response):
            if data != "[DONE]" and any(
                c["delta"].get("content") for c in json.loads(data)["choices"]
            ):
                times.append(t)
    return times


def _session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0)  # no pool limit: B16's clients are all at once
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120))


# -- B14 ---------------------------------------------------------------------------------------
async def b14(api_url: str, fake: str, quotes: str, rounds: int = 200, with_tasks: int = 60) -> Any:
    import openai

    sdk = openai.AsyncOpenAI(base_url=f"{fake}/v1", api_key="sk-bench", max_retries=0)
    async with _session() as http:
        api = Api(http, api_url)
        plain = await api.assistant("b14-plain", "gpt-4o")
        message = "what is the capital of france"
        ours, direct, raw, created = [], [], [], []
        for i in range(rounds + 20):  # interleaved: the machine's drift hits all three alike
            chat = await Chat(api, plain, message).run()
            t0 = time.perf_counter()
            first_raw = (await _raw_stream(http, fake, "gpt-4o", message))[0]
            sdk_ms = await _sdk_first_token(sdk, "gpt-4o", message)
            assert chat.ended == "run.completed", chat.events[-1:]
            if i >= 20:  # the first 20 warm up connections and caches
                ours.append(chat.at("message.delta"))
                created.append(chat.at("run.created"))
                raw.append((first_raw - t0) * 1000)
                direct.append(sdk_ms)
        linqra, sdk_direct, raw_direct = _stats(ours), _stats(direct), _stats(raw)
        out = {
            "assistant": "no tasks, no collections, model openai:gpt-4o (the fake's echo)",
            "linqra_sse": linqra,
            "linqra_run_created_event": _stats(created),
            "baseline_openai_sdk_direct": sdk_direct,
            "direct_raw_sse_reader": raw_direct,
            "added_p50_ms": round(linqra["p50_ms"] - sdk_direct["p50_ms"], 2),
            "added_p99_ms": round(linqra["p99_ms"] - sdk_direct["p99_ms"], 2),
            "added_p50_ms_over_the_same_reader": round(linqra["p50_ms"] - raw_direct["p50_ms"], 2),
            "ratio_p50": round(linqra["p50_ms"] / sdk_direct["p50_ms"], 2),
        }
        out["meets_target"] = out["added_p50_ms"] <= 10
        out["with_tasks_and_retrieval"] = await _b14_tasks(api, quotes, with_tasks)
    await sdk.close()
    return out


async def _ingested(api: Api, path: str, tries: int = 3) -> None:
    """Wait until the document at ``path`` is READY; a FAILED one is re-indexed (Milvus Lite
    has refused a flush now and then: "current_seq is monotonic")."""
    deadline = time.monotonic() + 60
    while (status := (await api.call("GET", path))["status"]) != "READY":
        assert time.monotonic() < deadline, f"{path} still {status} after 60 s"
        if status == "FAILED":
            assert tries > 0, f"{path} FAILED again: {await api.call('GET', path)}"
            tries -= 1
            await api.call("POST", f"{path}/reindex")
        await asyncio.sleep(0.05)


async def _b14_tasks(api: Api, quotes: str, rounds: int) -> dict[str, Any]:
    agent = (await api.call("POST", "/v1/agents", {"name": "b14", "max_concurrency": 8}))["id"]
    step = {"step": 1, "target": "http", "action": "fetch", "intent": f"{quotes}/api/sleep"}
    step["params"] = {"ms": 100}
    task = {"type": "WORKFLOW_EMBEDDED", "config": {"steps": [step]}}
    made = [
        await api.call("POST", f"/v1/agents/{agent}/tasks", {"name": f"sleep-{n}", **task})
        for n in (1, 2)
    ]
    tasks = [t["id"] for t in made]
    kc = (await api.call("POST", "/v1/knowledge/collections", {"name": "b14"}))["id"]
    rng = random.Random(14)
    words = [a + b for a in ("ka", "lo", "mi", "ra", "to", "ne") for b in ("su", "vi", "de", "po")]
    for d in range(20):  # one at a time: concurrent ingestions are not what is measured here
        text = " ".join(" ".join(rng.choices(words, k=12)).capitalize() + "." for _ in range(30))
        body = {"title": f"doc {d}", "text": text}
        doc = await api.call("POST", f"/v1/knowledge/collections/{kc}/documents", body)
        await _ingested(api, f"/v1/knowledge/collections/{kc}/documents/{doc['id']}")
    selected = [{"taskId": t, "timeoutSeconds": 30} for t in tasks]
    knowledge = {"collections": [kc], "topK": 5}
    assistant = await api.assistant(
        "b14-tasks", "gpt-4o", selectedTasks=selected, knowledge=knowledge
    )
    message = "kasu lovi mide rapo: what do the notes say"

    async def tasks_alone() -> float:
        t0, body = time.perf_counter(), {"input": {"message": message}}
        done = await asyncio.gather(
            *(api.call("POST", f"/v1/tasks/{t}/execute?wait=true", body) for t in tasks)
        )
        assert all(tx["status"] == "COMPLETED" for tx in done), done
        return (time.perf_counter() - t0) * 1000

    async def search_alone() -> float:
        t0, body = time.perf_counter(), {"query": message, "top_k": 5}
        found = await api.call("POST", f"/v1/knowledge/collections/{kc}/search", body)
        assert len(found["results"]) == 5
        return (time.perf_counter() - t0) * 1000

    first, slowest, search = [], [], []
    marks: dict[str, list[float]] = {"run.created": [], "tasks.started": [], "retrieval": []}
    marks["last task.completed"] = []
    for i in range(rounds + 5):
        chat = await Chat(api, assistant, message).run()
        task_ms, search_ms = await tasks_alone(), await search_alone()
        assert chat.ended == "run.completed", chat.events[-1:]
        done = chat.first("run.completed")
        assert [r["status"] for r in done["task_results"]] == ["completed"] * 2, done
        assert len(done["citations"]) == 5, done["citations"]
        if i < 5:  # warm-up
            continue
        first.append(chat.at("message.delta"))
        slowest.append(task_ms)
        search.append(search_ms)
        for name in ("run.created", "tasks.started", "retrieval"):
            marks[name].append(chat.at(name))
        marks["last task.completed"].append(chat.at("task.completed", last=True))
    out: dict[str, Any] = {
        "assistant": "2 tasks (each a workflow: one HTTP step to a local server answering after "
        "100 ms), 1 collection of 20 documents (topK 5), model openai:gpt-4o",
        "first_token": _stats(first),
        "tasks_alone_both_at_once": _stats(slowest),
        "retrieval_alone": _stats(search),
        "events_p50_ms_from_request": {k: round(_pct(v, 0.5), 2) for k, v in marks.items()},
    }
    budget = out["tasks_alone_both_at_once"]["p50_ms"] + out["retrieval_alone"]["p50_ms"] + 15
    out["budget_p50_ms"] = round(budget, 2)
    out["margin_p50_ms"] = round(budget - out["first_token"]["p50_ms"], 2)
    out["meets_target"] = out["first_token"]["p50_ms"] <= budget
    return out


# -- B15 ---------------------------------------------------------------------------------------
CANCEL_MODEL = "slow-20-400"  # a word every 20 ms, 400 of them: still streaming when cancelled
CANCEL_AFTER = 5  # words


async def _closed_at(http: aiohttp.ClientSession, fake: str, tag: str) -> float | None:
    """When the fake saw the stream of the request tagged ``tag`` closed (None after 5 s)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        async with http.get(f"{fake}/_bench/streams", params={"tag": tag}) as response:
            found = await response.json()
        if found and found[0]["closed_at"] is not None:
            return float(found[0]["closed_at"])
        await asyncio.sleep(0.01)
    return None


async def b15(api_url: str, fake: str, cancels: int = 100) -> dict[str, Any]:
    import openai

    sdk = openai.AsyncOpenAI(base_url=f"{fake}/v1", api_key="sk-bench", max_retries=0)
    closed, acked, ended, direct, problems = [], [], [], [], []
    async with _session() as http:
        api = Api(http, api_url)
        assistant = await api.assistant("b15", CANCEL_MODEL)
        for i in range(cancels):
            tag = f"cancel-{i}-{uuid.uuid4().hex[:8]}"
            chat = await Chat(api, assistant, f"tell me a long story {tag}").run(CANCEL_AFTER)
            run = chat.first("run.created")
            cancel = f"/v1/conversations/{run['conversation_id']}/runs/{run['run_id']}/cancel"
            sent, t0 = time.monotonic(), time.perf_counter()
            await api.call("POST", cancel)
            acked.append((time.perf_counter() - t0) * 1000)
            await chat.read()
            ended.append((chat.events[-1][0] - t0) * 1000)
            at = await _closed_at(http, fake, tag)
            if at is not None:
                closed.append((at - sent) * 1000)
            messages = f"/v1/conversations/{run['conversation_id']}/messages"
            reply = (await api.call("GET", messages))["items"][-1]
            if reply["status"] != "cancelled" or not Decimal(reply["cost"] or 0) > 0:
                problems.append({k: reply.get(k) for k in ("status", "cost", "usage")})
        for i in range(cancels):  # the baseline: the client closes the SDK's stream itself
            tag = f"direct-{i}-{uuid.uuid4().hex[:8]}"
            stream = await sdk.chat.completions.create(**_body(CANCEL_MODEL, f"a story {tag}"))
            words = 0
            async for chunk in stream:
                words += bool(chunk.choices and chunk.choices[0].delta.content)
                if words >= CANCEL_AFTER:
                    break
            sent = time.monotonic()
            await stream.close()
            at = await _closed_at(http, fake, tag)
            if at is not None:
                direct.append((at - sent) * 1000)
    await sdk.close()
    out: dict[str, Any] = {
        "model": f"openai:{CANCEL_MODEL} (a word every 20 ms), cancelled after {CANCEL_AFTER} words",
        "cancels": cancels,
        "cancel_to_provider_stream_closed": _stats(closed),
        "baseline_client_closes_sdk_stream": _stats(direct),
        "streams_never_closed": cancels - len(closed),
        "cancel_request_round_trip": _stats(acked),
        "cancel_to_run_cancelled_event": _stats(ended),
        "partial_cost_recorded": f"{cancels - len(problems)}/{cancels}",
        "problems": problems[:5],
    }
    p99 = out["cancel_to_provider_stream_closed"]["p99_ms"]
    out["meets_target"] = len(closed) == cancels and p99 <= 100 and not problems
    return out


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
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
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
        stacks: Stacks = []
        for line in out.read_text().splitlines() if out.is_file() else []:
            text, _, samples = line.rpartition(" ")
            stacks.append(([_frame(f) for f in text.split(";")], int(samples)))
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
    async with _session() as http:
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
            *(_raw_stream(http, fake, model, f"chat {i}") for i in range(chats)),
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
            "inter_chunk_gap": _stats([g for c in ok for g in _gaps([e[0] for e in c.deltas])]),
            "baseline_direct_inter_chunk_gap": _stats([g for d in direct_ok for g in _gaps(d)]),
            "baseline_direct_errors": chats - len(direct_ok),
            "first_token_under_load": _stats([c.at("message.delta") for c in ok]),
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
            async for event in _events(response):
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


# -- the run -----------------------------------------------------------------------------------
def _settings(data_dir: Path, fake: str, vector_uri: str, cache_url: str) -> Any:
    from linqra.config import KnowledgeSettings, LLMProviderConfig, LLMSettings, Settings

    providers = dict(LLMSettings().providers)
    providers["openai"] = LLMProviderConfig(kind="openai", base_url=f"{fake}/v1")
    return Settings(
        data_dir=data_dir,
        cache_url=cache_url,
        llm=LLMSettings(providers=providers),
        knowledge=KnowledgeSettings(vector_uri=vector_uri),
    ).portable()


def run(
    which: set[str],
    *,
    redis: bool,
    chats: int,
    pace_ms: int,
    words: int,
    resumes: int,
    profile: bool,
) -> None:
    """The servers, then each benchmark of ``which`` in order against them, each recorded as
    soon as it is done."""
    from linqra.testing.servers import redis_server
    from linqra.vectors import EmbeddedMilvus

    meta: dict[str, Any] = {
        "server": "uvicorn (uvloop, httptools, no access log), one process, SQLite store",
        "run_log": "redis-server (--redis)" if redis else "memory://",
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes_in_tree": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="linqra-chat-bench-")))
        cache_url = stack.enter_context(redis_server()) if redis else "memory://"
        milvus = EmbeddedMilvus(tmp / "milvus").start()
        stack.callback(milvus.stop)
        fake, fake_pid = stack.enter_context(_process(_serve_asgi, "benchmarks.chat:fake_app"))
        quotes, _ = stack.enter_context(_process(_serve_asgi, "deployments.demo:quotes_app"))
        settings = _settings(tmp / "app", fake, milvus.uri, cache_url)
        api, app_pid = stack.enter_context(_process(_serve, settings))
        pids = {"app": app_pid, "fake": fake_pid, "client": os.getpid()}
        for name in sorted(which):
            when, uptime, t0 = time.gmtime(), _uptime(), time.perf_counter()
            if name == "b14":
                figures = asyncio.run(b14(api, fake, quotes))
            elif name == "b15":
                figures = asyncio.run(b15(api, fake))
            else:
                b16_run = b16(api, fake, pids, chats, pace_ms, words, resumes, profile=profile)
                figures = asyncio.run(b16_run)
            print(name.upper(), json.dumps(figures), flush=True)
            key = name.upper()
            if name == "b16" and (chats, pace_ms, words, resumes) != (500, 40, 40, 100):
                key += f"_{chats}x-slow-{pace_ms}-{words}-{resumes}resumed"  # another load
            meta["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", when)
            meta["uptime_before"] = uptime
            seconds = round(time.perf_counter() - t0, 1)
            result = {**meta, **figures, "seconds": seconds, "uptime_after": _uptime()}
            _record(key + ("_redis" if redis else ""), result)


def _record(key: str, result: dict[str, Any]) -> None:
    """``result`` in full under ``key`` of benchmarks/results/chat.json, and its summary added
    to ``<key>_runs``; the file's other keys are kept."""
    path = RESULTS / "chat.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    previous[key] = result
    previous[f"{key}_runs"] = [*previous.get(f"{key}_runs", []), _summary(key[:3], result)]
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(previous, indent=2) + "\n")


def _summary(name: str, result: dict[str, Any]) -> dict[str, Any]:
    """One line of ``<name>_runs``: what the run found."""
    line = {k: result[k] for k in ("when", "commit", "run_log", "uptime_before")}
    if name == "B14":
        tasks = result["with_tasks_and_retrieval"]
        line |= {k: result[k] for k in ("added_p50_ms", "added_p99_ms")}
        line |= {"with_tasks_first_token_p50_ms": tasks["first_token"]["p50_ms"]}
        line |= {"with_tasks_budget_p50_ms": tasks["budget_p50_ms"]}
    elif name == "B15":
        line |= {"closed": result["cancel_to_provider_stream_closed"]}
        line |= {"partial_cost_recorded": result["partial_cost_recorded"]}
    else:
        line |= {k: result[k] for k in ("model", "chats", "errors", "inter_chunk_gap")}
        line |= {"resumed": result["resume"]["complete_and_exact"]}
    return line


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chat")
    parser.add_argument("which", nargs="*", help="b14, b15, b16 (default: all three)")
    parser.add_argument("--redis", action="store_true", help="the run logs in a redis-server")
    parser.add_argument("--chats", type=int, default=500, help="B16: chats at once")
    parser.add_argument("--pace-ms", type=int, default=40, help="B16: ms between words")
    parser.add_argument("--words", type=int, default=40, help="B16: words in each reply")
    parser.add_argument("--resumes", type=int, default=100, help="B16: streams cut and resumed")
    parser.add_argument("--profile", action="store_true", help="B16: py-spy on the app")
    args = parser.parse_args()
    which = {w.lower() for w in args.which} or {"b14", "b15", "b16"}
    if which - {"b14", "b15", "b16"}:
        parser.error(f"unknown benchmarks: {sorted(which - {'b14', 'b15', 'b16'})}")
    sizes = {"chats": args.chats, "pace_ms": args.pace_ms, "words": args.words}
    sizes["resumes"] = args.resumes
    run(which, redis=args.redis, profile=args.profile, **sizes)


if __name__ == "__main__":
    main()
