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
sizes under ``B16_<chats>x-slow-<pace>-<words>-<resumes>resumed``). The client is
:mod:`benchmarks._chat_client`, B16 :mod:`benchmarks._chat_concurrency`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks._chat_client import Api, Chat, completion_body, raw_stream, session, stats
from benchmarks._chat_concurrency import b16
from benchmarks._servers import FAKE_OPENAI, serve_app, serve_asgi, server_process
from benchmarks._support import git, percentile, uptime

RESULTS = Path(__file__).resolve().parent / "results"


# -- B14 ---------------------------------------------------------------------------------------
async def _sdk_first_token(sdk: Any, model: str, message: str) -> float:
    """The baseline: the openai SDK streaming from the fake, ms to the first content chunk."""
    t0, first = time.perf_counter(), None
    async for chunk in await sdk.chat.completions.create(**completion_body(model, message)):
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = (time.perf_counter() - t0) * 1000
    assert first is not None
    return first


async def b14(api_url: str, fake: str, quotes: str, rounds: int = 200, with_tasks: int = 60) -> Any:
    import openai

    sdk = openai.AsyncOpenAI(base_url=f"{fake}/v1", api_key="sk-bench", max_retries=0)
    async with session() as http:
        api = Api(http, api_url)
        plain = await api.assistant("b14-plain", "gpt-4o")
        message = "what is the capital of france"
        ours, direct, raw, created = [], [], [], []
        for i in range(rounds + 20):  # interleaved: the machine's drift hits all three alike
            chat = await Chat(api, plain, message).run()
            t0 = time.perf_counter()
            first_raw = (await raw_stream(http, fake, "gpt-4o", message))[0]
            sdk_ms = await _sdk_first_token(sdk, "gpt-4o", message)
            assert chat.ended == "run.completed", chat.events[-1:]
            if i >= 20:  # the first 20 warm up connections and caches
                ours.append(chat.at("message.delta"))
                created.append(chat.at("run.created"))
                raw.append((first_raw - t0) * 1000)
                direct.append(sdk_ms)
        linqra, sdk_direct, raw_direct = stats(ours), stats(direct), stats(raw)
        out = {
            "assistant": "no tasks, no collections, model openai:gpt-4o (the fake's echo)",
            "linqra_sse": linqra,
            "linqra_run_created_event": stats(created),
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
        "first_token": stats(first),
        "tasks_alone_both_at_once": stats(slowest),
        "retrieval_alone": stats(search),
        "events_p50_ms_from_request": {k: round(percentile(v, 0.5), 2) for k, v in marks.items()},
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
    async with session() as http:
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
            stream = await sdk.chat.completions.create(
                **completion_body(CANCEL_MODEL, f"a story {tag}")
            )
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
        "cancel_to_provider_stream_closed": stats(closed),
        "baseline_client_closes_sdk_stream": stats(direct),
        "streams_never_closed": cancels - len(closed),
        "cancel_request_round_trip": stats(acked),
        "cancel_to_run_cancelled_event": stats(ended),
        "partial_cost_recorded": f"{cancels - len(problems)}/{cancels}",
        "problems": problems[:5],
    }
    p99 = out["cancel_to_provider_stream_closed"]["p99_ms"]
    out["meets_target"] = len(closed) == cancels and p99 <= 100 and not problems
    return out


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
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes_in_tree": bool(git("status", "--porcelain", "--untracked-files=no")),
    }
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="linqra-chat-bench-")))
        cache_url = stack.enter_context(redis_server()) if redis else "memory://"
        milvus = EmbeddedMilvus(tmp / "milvus").start()
        stack.callback(milvus.stop)
        fake, fake_pid = stack.enter_context(server_process(serve_asgi, FAKE_OPENAI))
        quotes, _ = stack.enter_context(server_process(serve_asgi, "deployments.demo:quotes_app"))
        settings = _settings(tmp / "app", fake, milvus.uri, cache_url)
        api, app_pid = stack.enter_context(server_process(serve_app, settings))
        pids = {"app": app_pid, "fake": fake_pid, "client": os.getpid()}
        for name in sorted(which):
            when, uptime_before, t0 = time.gmtime(), uptime(), time.perf_counter()
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
            meta["uptime_before"] = uptime_before
            seconds = round(time.perf_counter() - t0, 1)
            result = {**meta, **figures, "seconds": seconds, "uptime_after": uptime()}
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
