"""The multi-node scenario as one driver process: three Ray nodes on this machine, Linqra's
actors started on them, work across the nodes, then a worker node killed mid-run. Prints (and
with ``--out`` writes) one JSON result; tests/test_multinode.py asserts on it and B21
(benchmarks/node_loss.py) reports it.

    python -m tests.support.multinode_driver --out result.json [--vector-uri http://…]

1. **spread**: chats — new conversations in the chat hosts, one host pinned to each node (more
   conversations until two nodes hold one), each reply streamed from the OpenAI fake this process
   serves and read here through ``system.chat.events`` — then executions (four parallel I/O
   steps, an agent's task, an ``async: true`` step, a CPU step), task executions on a second
   agent and documents, all at once; where each actor ran, where the async steps and the
   ingestion tasks ran; everything counted in the store (:mod:`tests.support.multinode_chat`
   counts the chats: runs, replies, what the driver read of each stream).
2. **node loss**: the runner, supervisor and scheduler are put on ``node_a`` (the worst case;
   ``--pin``), and a conversation whose host is there and another on ``node_b``; a longer batch
   is started with a long reply in each conversation, and once all of it is running ``node_a``
   is killed. Then: when the GCS saw it dead, when each singleton answered again from another
   node, when every record (and each chat run) reached its end, when the driver's streams
   ended, when the fake saw the lost reply's stream closed, and the counts — lost (not ended)
   and doubled (a step, a chunk or a reply twice) — and one new execution and one new message
   in the lost conversation after the loss.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from linqra._config_alerts import AlertSettings
from linqra.config import (
    AgentSettings,
    ChatSettings,
    ExecutionSettings,
    KnowledgeSettings,
    LLMProviderConfig,
    LLMSettings,
    MetricsSettings,
    Settings,
)
from linqra.system import System
from linqra.testing.fake_openai import FakeOpenAI
from tests.support import multinode_probe
from tests.support.multinode import ThreeNodes, pinned
from tests.support.multinode_chat import (
    HOST_NODES,
    LONG,
    MEDIUM,
    QUICK,
    Chat,
    all_ended,
    assistant_body,
    audit_chats,
    chat_assistants,
    chats_ended,
    pin_chat_hosts,
    pinned_conversation,
    provider_stream,
    send,
    streaming,
    streams_ended,
)
from tests.support.multinode_work import (
    TEAM,
    Batch,
    Fixtures,
    audit,
    ended,
    fixtures,
    in_flight,
    settled,
    start_batch,
)

NAMESPACE = "linqra-multinode"
VICTIM = "node_a"
SURVIVOR = "node_b"


def build_settings(data_dir: Path, vector_uri: str, openai_url: str | None = None) -> Settings:
    """The scenario's settings; ``openai_url``: the OpenAI provider's base URL (the fake's)."""
    providers = dict(LLMSettings().providers)
    if openai_url is not None:
        providers["openai"] = LLMProviderConfig(kind="openai", base_url=openai_url)
    base = Settings(
        data_dir=data_dir,
        execution=ExecutionSettings(
            heartbeat_seconds=0.5,
            stale_after_seconds=3,
            io_pool_size=2,
            cpu_pool_size=0,  # CPU steps as Ray tasks: they go where a CPU is free
            default_step_timeout_seconds=30,
        ),
        agents=AgentSettings(idle_seconds=60, stale_after_seconds=3, async_step_workers=2),
        knowledge=KnowledgeSettings(vector_uri=vector_uri, stale_after_seconds=2),
        # chat keeps the default timings (a reply heartbeats every 2 s, 15 s without one is a
        # dead worker): with 5 s, a new conversation actor's first reply (an actor each, then)
        # was interrupted alive at load 50 (likely its event loop held up by loading the
        # tokenizer and the OpenAI SDK); three hosts, one a node (pin_chat_hosts)
        chat=ChatSettings(hosts=len(HOST_NODES)),
        llm=LLMSettings(providers=providers),
        metrics=MetricsSettings(enabled=False),
        alerts=AlertSettings(enabled=False),
    )
    return base.model_copy(
        update={"ray": base.ray.model_copy(update={"namespace": NAMESPACE})}
    ).portable()


async def until(what: str, check: Callable[[], Awaitable[Any]], timeout: float) -> Any:
    """``await check()``'s first truthy value, polled every 0.2 s; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g}s")
        await asyncio.sleep(0.2)


async def answers(settings: Settings, name: str) -> bool:
    from actors.handles import call

    try:
        await asyncio.wait_for(call(settings, name, "ping"), timeout=5)
    except Exception:
        return False
    return True


def text(i: int, words: int) -> bytes:
    body = " ".join(f"word{(i * 7919 + k) % 1000}" for k in range(words))
    return f"Note {i}. Ray nodes share the store. {body}".encode()


class Scenario:
    def __init__(
        self, args: argparse.Namespace, settings: Settings, nodes: ThreeNodes, openai: FakeOpenAI
    ) -> None:
        self.args = args
        self.settings = settings
        self.nodes = nodes
        self.openai = openai
        self.probe = str(settings.data_dir / "probe.jsonl")
        self.t0 = time.monotonic()
        self.assistants: dict[str, str] = {}  # model -> assistant id
        self.chats: list[Chat] = []  # every chat sent: their readers are stopped at the end

    def since(self, t: float) -> float:
        return round(time.monotonic() - t, 2)

    async def open(self) -> System:
        from actors.events import open_bus
        from actors.handles import RayLauncher

        return await System.open(
            self.settings, launcher=RayLauncher(self.settings), events=open_bus(self.settings)
        )

    def singletons(self) -> list[str]:
        from actors.handles import RUNNER, SCHEDULER, SUPERVISOR

        return [RUNNER, SUPERVISOR, SCHEDULER]

    async def chat(
        self, system: System, model: str, label: str, message: str, conversation: str | None = None
    ) -> Chat:
        """Send ``message`` to the ``model`` assistant; its stream is read from here on."""
        chat = await send(system, self.assistants[model], model, label, message, conversation)
        self.chats.append(chat)
        return chat

    def conversation_node(self, conversation_id: str) -> str | None:
        from actors.handles import chat_host_for

        return self.nodes.node_of(chat_host_for(self.settings, conversation_id))

    async def spread(self, system: System, fx: Fixtures) -> dict[str, Any]:
        t = time.monotonic()
        # a new conversation, one at a time, until two nodes hold one (at most --max-chats): its
        # host is the one its id hashes to, each host on its own node (pin_chat_hosts)
        chats: list[Chat] = []
        chat_nodes: dict[str, str | None] = {}
        while len(chats) < self.args.chats or (
            len(set(chat_nodes.values()) - {None}) < 2 and len(chats) < self.args.max_chats
        ):
            label = f"spread-{len(chats)}"
            chat = await self.chat(system, QUICK, label, f"{label} across the nodes")
            chats.append(chat)
            chat_nodes[label] = self.conversation_node(chat.conversation_id)
        batch = await start_batch(
            system, fx, executions=self.args.executions, io_seconds=0.3, async_seconds=0.5,
            sleepers=2, echoes=1, documents=[text(i, 400) for i in range(3)],
        )  # fmt: skip
        await until("the spread batch ended", lambda: settled(system, batch), 120)
        await until("the spread chats' streams ended", lambda: streams_ended(chats), 60)
        await until("the spread chat runs ended", lambda: all_ended(system, chats), 30)
        ran = self.since(t)
        ingest_nodes = {
            line["doc_id"]: self.nodes.label(line["node_id"])
            for line in multinode_probe.read(self.probe)
            if line["doc_id"] in batch.documents
        }
        counts = await audit(system, batch, fx)
        placement = self.nodes.placement()
        return {
            "seconds": ran,
            "placement": placement,
            "ingestion_nodes": ingest_nodes,
            "async_step_nodes": {
                worker: placement.get(worker) for worker in counts["async_steps"]["workers"]
            },
            "counts": counts,
            "chat": {"nodes": chat_nodes, **await audit_chats(system, chats)},
        }

    async def loss(self, system: System, fx: Fixtures) -> dict[str, Any]:
        args = self.args
        # a conversation whose host is on the node to be killed, another whose host stays
        pinned_to = {VICTIM: (LONG, "lost mid answer"), SURVIVOR: (MEDIUM, "kept across the loss")}
        conversations = {
            label: await pinned_conversation(system, self.settings, self.assistants[model], label)
            for label, (model, _) in pinned_to.items()
        }
        chat_nodes = {label: self.conversation_node(c) for label, c in conversations.items()}
        chats = [
            await self.chat(system, model, label, message, conversations[label])
            for label, (model, message) in pinned_to.items()
        ]
        # a conversation's first reply waits for its process's first LLM call (the SDK's
        # import and client): the batch is started once both replies stream, long ones
        await until("both replies streaming", lambda: streaming(chats), 90)
        batch = await start_batch(
            system, fx, executions=args.loss_executions, io_seconds=args.io_seconds,
            async_seconds=args.async_seconds, sleepers=2,
            documents=[text(100 + i, args.doc_words) for i in range(2)],
        )  # fmt: skip
        seen: list[tuple[float, dict[str, int]]] = []  # each change, for a timeout's message

        async def running() -> dict[str, int] | None:
            now = await in_flight(system, batch)
            now["chats_streaming"] = sum(c.deltas >= 2 for c in chats)
            now["chat_streams_ended"] = sum(c.ended_at is not None for c in chats)
            ok = (
                now["executions_running"] == len(batch.executions)
                and now["steps_running"] >= len(batch.executions)
                and now["async_steps_waiting_or_running"] >= 1
                and now["task_executions_running"] >= 1
                and now["chats_streaming"] == len(chats)
                and now["chat_streams_ended"] == 0
            )
            if not seen or seen[-1][1] != now:
                seen.append((self.since(self.t0), now))
            return now if ok else None

        try:
            flying = await until("the loss batch in flight", running, 90)
        except TimeoutError as exc:
            ran = await audit_chats(system, chats)
            raise TimeoutError(f"{exc}; seen (s since the start): {seen}; chats: {ran}") from None
        before = self.nodes.placement()
        on_victim = sorted(name for name, node in before.items() if node == VICTIM)
        streamed = {c.label: len(c.text) for c in chats}
        removed_at = self.nodes.remove(VICTIM)
        seen_dead = await until("the GCS saw the node dead", self._dead_check, 60)
        detected = round(seen_dead - removed_at, 2)
        back: dict[str, float] = {}
        for name in self.singletons():
            await until(f"{name} back on another node", self._back_check(name), 90)
            back[name] = round(time.monotonic() - removed_at, 2)
        timed_out = None
        try:
            ended_s = await self._ended_times(system, batch, chats, removed_at, args.settle_timeout)
        except TimeoutError as exc:  # counted all the same: what never ended is lost
            timed_out, ended_s = str(exc), {}
        counts = await audit(system, batch, fx)
        after = self.nodes.placement()
        t = time.monotonic()
        fresh = await start_batch(
            system, fx, executions=1, io_seconds=0.1, async_seconds=0.1, sleepers=1, documents=[]
        )
        with contextlib.suppress(TimeoutError):  # the counts say what did not end
            await until("an execution after the loss ended", lambda: settled(system, fresh), 60)
        fresh_counts = await audit(system, fresh, fx)
        chat = await self._chat_after_loss(system, chats, conversations[VICTIM], removed_at)
        return {
            "victim": VICTIM,
            "in_flight": flying,
            "actors_on_victim": on_victim,
            "detected_dead_s": detected,
            "singletons_back_s": back,
            "all_ended_s": max(ended_s.values()) if ended_s else None,
            "timed_out": timed_out,
            "ended_s": ended_s,
            "placement_before": before,
            "placement_after": after,
            "restarts": {name: self.nodes.restarts(name) for name in on_victim},
            "counts": counts,
            "after_loss": {
                "seconds": self.since(t),
                "executions": fresh_counts["executions"]["by_status"],
                "task_executions": fresh_counts["task_executions"]["by_status"],
            },
            "chat": {"nodes": chat_nodes, "streamed_at_kill": streamed, **chat},
        }

    async def _chat_after_loss(
        self, system: System, chats: list[Chat], lost: str, removed_at: float
    ) -> dict[str, Any]:
        """When the streams read from the driver ended; then a message in the conversation
        whose actor was lost (a new actor takes it); the chats counted in the store."""
        with contextlib.suppress(TimeoutError):  # the audit says which did not end
            await until("the chat streams ended", lambda: streams_ended(chats), 60)
        streams_s = {
            c.label: None if c.ended_at is None else round(c.ended_at - removed_at, 2)
            for c in chats
        }
        t = time.monotonic()
        # its assistant switched to the quick model first: a second's answer, not a minute's
        await system.assistants.update(TEAM, self.assistants[LONG], assistant_body("long", QUICK))
        again = await send(system, self.assistants[LONG], QUICK, "again", "are you back", lost)
        self.chats.append(again)
        with contextlib.suppress(TimeoutError):
            await until("the lost conversation's next answer", lambda: streams_ended([again]), 60)
        return {
            "streams_ended_s": streams_s,
            "provider_stream": provider_stream(self.openai, chats[0], removed_at),
            "again": {"seconds": self.since(t), "node": self.conversation_node(lost)},
            **await audit_chats(system, [*chats, again]),
        }

    async def _ended_times(
        self, system: System, batch: Batch, chats: list[Chat], since: float, timeout: float
    ) -> dict[str, float]:
        """Seconds from ``since`` until each kind of record of ``batch`` had all ended, and
        each of ``chats`` (``chat_<label>``)."""
        times: dict[str, float] = {}

        async def check() -> bool:
            kinds = {**await ended(system, batch), **await chats_ended(system, chats)}
            for kind, done in kinds.items():
                if done and kind not in times:
                    times[kind] = round(time.monotonic() - since, 2)
            return len(times) == len(kinds)

        try:
            await until("every record of the loss batch ended", check, timeout)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; ended by then: {times}") from None
        return times

    async def _dead_check(self) -> float | None:
        return None if self.nodes.alive(VICTIM) else time.monotonic()

    def _back_check(self, name: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            node = self.nodes.node_of(name)
            return node not in (None, VICTIM) and await answers(self.settings, name)

        return check

    async def run(self) -> dict[str, Any]:
        from actors.cluster import Readiness

        result: dict[str, Any] = {}
        await until("the cluster's actors answer", self._ready(Readiness(self.settings)), 120)
        result["ready_s"] = self.since(self.t0)
        system = await self.open()
        try:
            fx = await fixtures(system, self.args.sleeper_seconds)
            self.assistants = await chat_assistants(system)
            await pin_chat_hosts(self.settings, self.nodes.ids)
            result["spread"] = await self.spread(system, fx)
            if not self.args.skip_loss:
                result["loss"] = await self.loss(system, fx)
        finally:
            readers = [c.reader for c in self.chats if c.reader is not None]
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            await system.close()
        return result

    @staticmethod
    def _ready(readiness: Any) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            try:
                await asyncio.wait_for(readiness.check(), timeout=10)
            except Exception:
                return False
            return True

        return check


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.support.multinode_driver")
    p.add_argument("--out", type=Path)
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--vector-uri", help="a running Milvus (Lite) server; else one is started")
    p.add_argument("--executions", type=int, default=3, help="executions of the spread batch")
    p.add_argument("--chats", type=int, default=3, help="conversations of the spread phase")
    p.add_argument("--max-chats", type=int, default=8,
                   help="more of them, until two nodes hold their actors")  # fmt: skip
    p.add_argument("--loss-executions", type=int, default=6)
    p.add_argument("--io-seconds", type=float, default=4.0, help="I/O steps of the loss batch")
    p.add_argument("--async-seconds", type=float, default=3.0)
    p.add_argument("--sleeper-seconds", type=float, default=4.0, help="the sleeper task's wait")
    p.add_argument("--doc-words", type=int, default=20_000, help="loss batch documents' size")
    p.add_argument("--pin", action="append", default=[], metavar="ACTOR=NODE",
                   help="also place ACTOR on NODE (head, node_a, node_b) at start")  # fmt: skip
    p.add_argument("--no-default-pins", action="store_true",
                   help="leave the runner, supervisor and scheduler to SPREAD")  # fmt: skip
    p.add_argument("--skip-loss", action="store_true")
    p.add_argument("--settle-timeout", type=float, default=150.0,
                   help="seconds after the loss for every record to end")  # fmt: skip
    p.add_argument("--ray-health-check", action="store_true",
                   help="Ray's default node health check (3 s x 5) instead of 0.5 s x 3")  # fmt: skip
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from actors.cluster import start_cluster
    from actors.handles import RUNNER, SCHEDULER, SUPERVISOR

    args = parse(argv)
    t0 = time.monotonic()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="linqra-multinode-"))
    milvus = None
    vector_uri = args.vector_uri
    if vector_uri is None:
        from linqra.vectors import EmbeddedMilvus

        milvus = EmbeddedMilvus(data_dir / "milvus").start()
        vector_uri = milvus.uri
    # the replies' LLM: served by this process on a loopback port, which every node reaches
    openai = FakeOpenAI().__enter__()
    settings = build_settings(data_dir, vector_uri, openai.base_url)
    probe = str(settings.data_dir / "probe.jsonl")
    # the nodes' worker processes import tests.support.multinode_probe (the setup hook)
    root = str(Path(__file__).resolve().parents[2])
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    nodes = ThreeNodes(NAMESPACE, health_check={} if args.ray_health_check else None)
    pins = {} if args.no_default_pins else {n: VICTIM for n in (RUNNER, SUPERVISOR, SCHEDULER)}
    pins.update(dict(pin.split("=", 1) for pin in args.pin))
    result: dict[str, Any] = {"pins": pins}
    try:
        result["cluster"] = nodes.start(
            runtime_env={
                "worker_process_setup_hook": "tests.support.multinode_probe.install",
                "env_vars": {multinode_probe.ENV: probe},
            }
        )
        with pinned(pins, nodes):
            start_cluster(settings)
        scenario = Scenario(args, settings, nodes, openai)
        result.update(asyncio.run(scenario.run()))
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        nodes.shutdown()
        openai.__exit__(None, None, None)
        if milvus is not None:
            milvus.stop()
        if args.data_dir is None:  # its own temporary directory
            shutil.rmtree(data_dir, ignore_errors=True)
    result["total_s"] = round(time.monotonic() - t0, 2)
    text_out = json.dumps(result, indent=2, default=str)
    if args.out:
        args.out.write_text(text_out + "\n")
    print(text_out)
    return result


if __name__ == "__main__":
    sys.exit(1 if "error" in main() else 0)
