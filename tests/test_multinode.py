"""Issue 17 part 1: Linqra on a Ray cluster of three nodes on this machine (a head and two
workers, ``ray.cluster_utils.Cluster``). The scenario runs once, in a driver process of its own
(the session's Ray cannot share this process with another cluster):
``tests/support/multinode_driver.py``; these tests read its JSON result.

Work lands on every node and every kind of it ends, chat included: replies written by chat
hosts on other nodes, streamed to the driver on the head. Then ``node_a``, holding the runner,
the supervisor, the scheduler (put there: the worst case), a chat host mid-answer (put there
too) and whatever ``SPREAD`` put there, is killed mid-run, and nothing is lost or done twice,
the singletons and the chat host answer again from other nodes, every chat run ends (the lost
one ``interrupted`` with its partial reply), and new work runs, a new message in the lost
conversation too. Select with ``pytest -m multinode``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.multinode

ROOT = Path(__file__).resolve().parents[1]
SINGLETONS = ("linqra-runner", "linqra-supervisor", "linqra-scheduler")
NODES = {"head", "node_a", "node_b"}


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory, milvus_uri: str) -> dict[str, Any]:
    """The scenario's result. The I/O pool and the async-step workers are kept off the lost
    node: an I/O worker lost under a live runner fails its executions, and an async step running
    on a worker that dies is taken over only after its timeout plus 60 s — gaps B21 measures
    (docs/scaling.md, "What survives a node loss")."""
    work = tmp_path_factory.mktemp("multinode")
    out = work / "result.json"
    command = [
        sys.executable, "-m", "tests.support.multinode_driver",
        "--out", str(out), "--data-dir", str(work / "data"), "--vector-uri", milvus_uri,
        "--pin", "linqra-io-0=head", "--pin", "linqra-io-1=node_b",
        "--pin", "linqra-async-0=head", "--pin", "linqra-async-1=node_b",
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=420)
    assert out.exists(), f"exit {proc.returncode}: {proc.stdout[-2000:]}{proc.stderr[-4000:]}"
    found: dict[str, Any] = json.loads(out.read_text())
    assert "error" not in found, f"{found['error']}\n{proc.stderr[-4000:]}"
    return found


def test_work_lands_on_every_node(result: dict[str, Any]) -> None:
    spread = result["spread"]
    placement = spread["placement"]
    assert set(placement.values()) == NODES, placement
    assert placement["linqra-events"] == "head"  # the in-memory bus lives on the head
    agents = [node for name, node in placement.items() if name.startswith("linqra-agent-")]
    # each agent's actor ran on a node of the cluster; SPREAD is best effort, no strict round
    # robin (all three on one node has happened under load), so that it spreads actors over the
    # nodes is asserted where the driver makes them until two nodes hold one: the conversations
    # (test_chat_replies_stream_to_the_driver_from_other_nodes)
    assert len(agents) == 3 and set(agents) <= NODES, placement
    assert len(set(spread["ingestion_nodes"].values())) >= 2, spread["ingestion_nodes"]
    # whichever async worker claims first runs a step: only on the nodes they were pinned to
    assert spread["async_step_nodes"] and set(spread["async_step_nodes"].values()) <= {
        "head",
        "node_b",
    }


def test_every_kind_of_work_ends_across_the_nodes(result: dict[str, Any]) -> None:
    counts = result["spread"]["counts"]
    executions = counts["executions"]
    assert executions["by_status"] == {"COMPLETED": executions["started"]}, executions
    assert executions["steps_completed_twice"] == 0
    assert executions["completed_without_a_step"] == 0
    assert counts["async_steps"]["completed"] == counts["async_steps"]["expected"]
    tasks = counts["task_executions"]
    assert tasks["by_status"] == {"COMPLETED": tasks["started"]}, tasks
    assert tasks["nested_by_status"] == {"COMPLETED": executions["started"]}, tasks
    documents = counts["documents"]
    assert documents["by_status"] == {"READY": documents["started"]}, documents
    assert documents["chunks_match"] and documents["doubled_chunks"] == 0


def test_a_lost_node_doubles_no_step(result: dict[str, Any]) -> None:
    """The lost node's runner may still run after Ray restarted it elsewhere under the same
    runner id: the numbered claim refuses its step writes (tests/test_claim_fence.py)."""
    executions = result["loss"]["counts"]["executions"]
    assert executions["steps_completed_twice"] == 0, executions


def test_a_lost_node_loses_nothing_and_doubles_nothing(result: dict[str, Any]) -> None:
    loss = result["loss"]
    flying = loss["in_flight"]
    assert flying["executions_running"] > 0 and flying["steps_running"] > 0, flying
    assert flying["async_steps_waiting_or_running"] > 0 and flying["task_executions_running"] > 0
    counts = loss["counts"]
    executions = counts["executions"]
    assert executions["found"] == executions["started"] and executions["lost"] == 0, executions
    assert executions["auto_resumed"] == executions["started"]  # the restarted runner took them
    assert executions["completed_without_a_step"] == 0, executions
    steps = counts["async_steps"]
    assert steps["completed"] == steps["expected"] and steps["unfinished"] == 0, steps
    tasks = counts["task_executions"]
    assert tasks["found"] == tasks["started"], tasks
    assert sum(tasks["by_status"].values()) == tasks["started"]  # every one ended (settled)
    assert tasks["nested"] == executions["started"] and tasks["nested_per_execution_max"] == 1
    documents = counts["documents"]
    assert documents["by_status"] == {"READY": documents["started"]}, documents
    assert documents["chunks_match"] and documents["doubled_chunks"] == 0


def test_the_singletons_come_back_on_other_nodes(result: dict[str, Any]) -> None:
    loss = result["loss"]
    assert set(SINGLETONS) <= set(loss["actors_on_victim"]), loss["actors_on_victim"]
    for name in loss["actors_on_victim"]:
        if name.startswith("linqra-agent-"):  # an agent's actor may also have passivated since
            continue
        assert loss["placement_after"][name] in NODES - {"node_a"}, (name, loss["placement_after"])
        assert loss["restarts"][name]["restarts"] >= 1, loss["restarts"][name]
    assert set(loss["singletons_back_s"]) == set(SINGLETONS)
    assert loss["after_loss"]["executions"] == {"COMPLETED": 1}
    assert loss["after_loss"]["task_executions"] == {"COMPLETED": 1}


def test_nothing_fails_across_the_loss(result: dict[str, Any]) -> None:
    """A task execution waiting for its workflow execution while the runner restarts reads the
    store until the runner is back (``TaskExecutions._wait_once``), as ``RunService`` does; so
    neither it nor an execution whose ``agent`` step waits for it fails."""
    counts = result["loss"]["counts"]
    assert not counts["task_executions"]["errors"], counts["task_executions"]
    assert not counts["executions"]["errors"], counts["executions"]


def test_chat_replies_stream_to_the_driver_from_other_nodes(result: dict[str, Any]) -> None:
    """Each new conversation goes to the chat host its id hashes to, one host on each node; the
    driver, on the head, reads each reply's stream from the log in that host (``RayRunLog``):
    every event once, in order, the deltas adding up to the stored reply, which is the whole
    answer."""
    chat = result["spread"]["chat"]
    nodes = chat["nodes"]
    assert len(set(nodes.values()) - {None}) >= 2 and set(nodes.values()) <= NODES, nodes
    assert chat["runs_found"] == chat["started"] >= 3, chat
    assert chat["by_status"] == {"completed": chat["started"]}, chat
    assert chat["doubled_replies"] == 0 and chat["missing_replies"] == 0, chat
    for label, one in chat["chats"].items():
        assert not one["stream_error"] and one["seqs_contiguous"], (label, one)
        assert one["first_event"] == "run.created" and one["last_event"] == "run.completed"
        assert one["reply_is_whole"] and one["streamed_is_stored"], (label, one)
        assert one["reply_status"] == "completed" and one["user_messages"] == 1, (label, one)


def test_a_lost_node_ends_every_chat_run_once(result: dict[str, Any]) -> None:
    """A chat host lost mid-answer: the supervisor interrupts its run once the run's heartbeat
    is stale, keeping the partial reply; the stream read on the driver ends then with
    ``run.interrupted``, made from the records (the log was in the lost host); the reply on a
    node that lives completes; the next message in the lost conversation is answered by the
    host Ray restarted on another node."""
    loss = result["loss"]
    chat = loss["chat"]
    assert chat["nodes"] == {"node_a": "node_a", "node_b": "node_b"}, chat["nodes"]
    assert loss["in_flight"]["chats_streaming"] == 2, loss["in_flight"]
    assert loss["in_flight"]["chat_streams_ended"] == 0, loss["in_flight"]
    runs = chat["chats"]
    lost, kept, again = runs["node_a"], runs["node_b"], runs["again"]
    assert chat["runs_found"] == chat["started"] == 3 and chat["unfinished"] == 0, chat
    assert chat["by_status"] == {"interrupted": 1, "completed": 2}, chat
    assert chat["doubled_replies"] == 0 and chat["missing_replies"] == 0, chat
    assert all(one["user_messages"] == 1 and not one["stream_error"] for one in runs.values())
    assert lost["status"] == "interrupted" and lost["reply_status"] == "interrupted", lost
    assert lost["reply_is_prefix"] and 0 < lost["reply_chars"] < lost["expected_chars"], lost
    assert lost["stream_ended"] and lost["seqs_contiguous"] and lost["streamed_is_prefix"], lost
    assert lost["last_event"] == "run.interrupted", lost
    assert chat["provider_stream"]["closed_s"] is not None, chat["provider_stream"]
    assert kept["status"] == "completed" and kept["reply_is_whole"], kept
    assert kept["seqs_contiguous"] and kept["streamed_is_stored"], kept
    assert kept["last_event"] == "run.completed", kept
    assert again["conversation_id"] == lost["conversation_id"], again
    assert again["status"] == "completed" and again["reply_is_whole"], again
    assert again["last_event"] == "run.completed" and again["seqs_contiguous"], again
    assert chat["again"]["node"] in NODES - {"node_a"}, chat["again"]
    assert {"chat_node_a", "chat_node_b"} <= set(loss["ended_s"]), loss["ended_s"]
