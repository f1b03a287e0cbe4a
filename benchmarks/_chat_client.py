"""The client of the chat benchmarks (:mod:`benchmarks.chat`): the app's HTTP API as the
benchmark's team, a streamed chat message read event by event with each event's arrival time
(aiohttp, ``time.perf_counter``), and the baselines' direct reads of the OpenAI fake.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from benchmarks._support import percentile

__all__ = [
    "PRICE",
    "TEAM",
    "TERMINAL",
    "Api",
    "Chat",
    "Event",
    "completion_body",
    "raw_stream",
    "read_events",
    "session",
    "stats",
]

TEAM = {"X-Team-Id": "bench-chat"}
TERMINAL = frozenset({"run.completed", "run.cancelled", "run.failed", "run.interrupted"})
PRICE = {"input": "2.50", "output": "10.00"}  # per million tokens: a cancelled reply costs > 0
Event = tuple[float, str, str, str]  # (perf_counter when read, id, event, data)


async def read_events(response: aiohttp.ClientResponse) -> AsyncIterator[Event]:
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


def stats(samples_ms: list[float]) -> dict[str, Any]:
    """How many samples, their p50, p99 and maximum (ms)."""
    return {
        "n": len(samples_ms),
        "p50_ms": round(percentile(samples_ms, 0.5), 2),
        "p99_ms": round(percentile(samples_ms, 0.99), 2),
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
        self.stream = read_events(self.response)
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


def completion_body(model: str, message: str) -> dict[str, Any]:
    """A streamed chat completion of ``message`` by ``model``, as the OpenAI API takes it."""
    return {"model": model, "stream": True, "messages": [{"role": "user", "content": message}]}


async def raw_stream(http: aiohttp.ClientSession, fake: str, model: str, text: str) -> list[float]:
    """The fake read directly with this client's reader: when each content chunk arrived."""
    times = []
    async with http.post(
        f"{fake}/v1/chat/completions", json=completion_body(model, text)
    ) as response:
        response.raise_for_status()
        async for t, _, _, data in read_events(response):
            if data != "[DONE]" and any(
                c["delta"].get("content") for c in json.loads(data)["choices"]
            ):
                times.append(t)
    return times


def session() -> aiohttp.ClientSession:
    """An HTTP session with no limit on its connections and a 120 s timeout per request."""
    connector = aiohttp.TCPConnector(limit=0)  # no pool limit: B16's clients are all at once
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120))
