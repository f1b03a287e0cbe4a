"""The ``linqra`` command's remote commands against the real HTTP API (``live_url``: uvicorn over
an in-process system, header mode): ``status``, ``run`` (a file, a Linq request file, a stored
id; live steps, ``--json``, ``--no-wait``, exit 1 when the run fails), ``workflows``,
``executions`` (list, show, tail, cancel, resume), ``ingest`` (progress off a terminal) and
``chat`` (one message streamed; a conversation read from stdin), bad input (exit 2, the message
naming the id or field) and a gateway that is not running (one line). Most run the CLI in this
process (``deployments.cli.main``); two run ``.venv/bin/linqra`` as a user would."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deployments.cli import main
from linqra_client import Linqra
from tests.support.http import until
from tests.support.pdf import make_pdf
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
LINQRA = ROOT / ".venv" / "bin" / "linqra"
EXAMPLES = ROOT / "configs" / "examples"
TEAM = "team-cli"
LOCAL = {"provider": "local", "modelName": "local"}
SLOW = [{"step": 1, "target": "wait", "params": {"seconds": 30}}]
FAILING = [{"step": 1, "target": "quotes-service", "action": "fetch", "intent": "/status/404"}]


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture(autouse=True)
def _own_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credentials, gateway or Ray cluster from the environment, and a data dir with no
    ``ray-address`` in it: ``status`` finds no cluster to report on."""
    for name in ("LINQRA_URL", "LINQRA_TEAM", "LINQRA_API_KEY", "LINQRA_TOKEN", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LINQRA_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def api(live_url: str) -> Iterator[Linqra]:
    with Linqra(live_url, team=TEAM) as client:
        yield client


@pytest.fixture
def cli(live_url: str, capsys: pytest.CaptureFixture[str]) -> Any:
    """``cli(*args)``: the command in this process against ``live_url`` as ``team-cli``."""
    capsys.readouterr()

    def run(*args: str, team: str | None = TEAM, url: str | None = live_url) -> Result:
        extra = [*(["--url", url] if url else []), *(["--team", team] if team else [])]
        code = main([*args, *extra])
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


def subprocess_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINQRA_", "RAY_"))}
    return {**env, "LINQRA_DATA_DIR": str(tmp_path / "data")}


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# -- status ----------------------------------------------------------------------------------
def test_status_shows_the_gateway_who_you_are_and_what_runs(cli: Any, api: Linqra) -> None:
    slow = api.workflows.create(name="slow", steps=SLOW)
    run = api.executions.start(slow.id)
    until(lambda: api.executions.get(run.id).status == "RUNNING", 10)
    shown = cli("status")
    assert shown.code == 0, shown
    assert re.search(r"^gateway: +http://127\.0\.0\.1:\d+ ok \(version", shown.out, re.M)
    assert "store ok, runner ok" in shown.out
    assert f"team {TEAM} as admin (signed in by header)" in shown.out
    assert "executions: 1 running, 0 pending; 1 workflow(s)" in shown.out
    assert "ray" not in shown.out  # no cluster named: no Ray section, and no failure
    report = cli("status", "--json").json
    assert report["health"]["status"] == "ok" and report["me"]["team_id"] == TEAM
    assert report["executions"] == {"RUNNING": 1, "PENDING": 0} and report["workflows"] == 1
    api.executions.cancel(run.id)
    anonymous = cli("status", team=None)
    assert anonymous.code == 0 and "you:        no credentials: give --team TEAM" in anonymous.out


# -- run -------------------------------------------------------------------------------------
def test_run_a_workflow_file_prints_each_step_then_the_result(cli: Any, api: Linqra) -> None:
    done = cli("run", str(EXAMPLES / "parallel_workflow.json"), "--param", "topic=courage")
    assert done.code == 0, done
    lines = done.out.splitlines()
    assert re.match(r"workflow wf_\w+: three-people-in-parallel, version 1", lines[0])
    assert re.search(r"^  step +4 transform +COMPLETED +[\d.]+ ms$", done.out, re.M)
    assert re.search(r"^execution ex_\w+: COMPLETED in \d+ ms$", done.out, re.M)
    result = json.loads(lines[-1].removeprefix("result: "))
    assert result == {"topic": "courage", "authors": ["Marcus Aurelius", "Seneca", "Epictetus"]}
    # the same file again runs the same workflow, unchanged: no second workflow, no new version
    again = cli("run", str(EXAMPLES / "parallel_workflow.json"))
    assert again.code == 0 and again.out.splitlines()[0] == lines[0]
    [stored] = api.workflows.list().all()
    assert stored.name == "three-people-in-parallel" and stored.version == 1
    assert api.executions.list(workflow_id=stored.id).page().total == 2


def test_a_linq_request_file_is_stored_under_its_file_name(
    cli: Any, api: Linqra, tmp_path: Path
) -> None:
    linq = {
        "link": {"target": "workflow", "action": "execute"},
        "query": {
            "params": {"word": "tide"},
            "workflow": [
                {
                    "step": 1,
                    "target": "transform",
                    "params": {"expression": "{said: word}", "input": {"word": "{{params.word}}"}},
                },
            ],
        },
    }
    path = tmp_path / "say-it.json"
    path.write_text(json.dumps(linq))
    done = cli("run", str(path), "--json")
    assert done.code == 0, done
    record = done.json
    assert record["status"] == "COMPLETED" and record["result"] == {"said": "tide"}
    assert record["workflow_name"] == "say-it" and record["executed_by"] == "linqra-run"
    linq["query"]["params"] = {"word": "moon"}  # changed: a new version of the same workflow
    path.write_text(json.dumps(linq))
    assert cli("run", str(path), "--json").json["result"] == {"said": "moon"}
    [stored] = api.workflows.list().all()
    assert stored.name == "say-it" and stored.version == 2


def test_run_a_stored_workflow_by_id(cli: Any, api: Linqra) -> None:
    body = json.loads((EXAMPLES / "parallel_workflow.json").read_text())
    workflow = api.workflows.create(body)
    record = cli("run", workflow.id, "--param", "topic=calm", "--json")
    assert record.code == 0, record
    assert record.json["status"] == "COMPLETED" and record.json["workflow_id"] == workflow.id
    assert record.json["result"]["topic"] == "calm" and len(record.json["steps"]) == 4
    started = cli("run", workflow.id, "--no-wait", "--json")
    assert started.code == 0 and started.json["id"].startswith("ex_")
    finished = api.executions.wait(started.json["id"], timeout=30)
    assert finished.status == "COMPLETED"
    plain = cli("run", workflow.id, "--no-wait")
    assert re.match(r"execution ex_\w+: RUNNING \(follow it: linqra executions tail ex_", plain.out)


def test_a_failing_run_exits_1_and_shows_the_step_error(cli: Any, api: Linqra) -> None:
    workflow = api.workflows.create(name="broken", steps=FAILING)
    failed = cli("run", workflow.id)
    assert failed.code == 1, failed
    assert re.search(r"^  step +1 quotes-service +FAILED .*HTTP 404", failed.out, re.M)
    assert re.search(r"^execution ex_\w+: FAILED in \d+ ms$", failed.out, re.M)
    assert cli("run", workflow.id, "--json").json["status"] == "FAILED"


# -- workflows and executions ----------------------------------------------------------------
def test_workflows_list_and_show(cli: Any, api: Linqra) -> None:
    first = api.workflows.create(name="first", steps=SLOW)
    second = api.workflows.create(json.loads((EXAMPLES / "parallel_workflow.json").read_text()))
    listed = cli("workflows", "list")
    assert listed.code == 0
    assert listed.out.splitlines() == [
        f"{second.id}  v1   dag          4 step(s)  three-people-in-parallel",
        f"{first.id}  v1   sequential   1 step(s)  first",
        "(2 of 2 workflow(s))",
    ]
    assert [w["id"] for w in cli("workflows", "list", "--json").json] == [second.id, first.id]
    shown = cli("workflows", "show", second.id)
    assert shown.code == 0
    assert f"workflow {second.id}: three-people-in-parallel, version 1, mode dag" in shown.out
    assert "  step   1 quotes-service     fetch /api/people/random" in shown.out
    assert cli("workflows", "show", first.id, "--json").json["steps"] == SLOW


def test_executions_list_show_cancel_resume_and_tail(cli: Any, api: Linqra) -> None:
    slow = api.workflows.create(name="slow", steps=SLOW)
    quick = api.workflows.create(
        name="quick",
        steps=[
            {"step": 1, "target": "wait", "params": {"seconds": 0.5}},
            {
                "step": 2,
                "target": "transform",
                "params": {"expression": '`"done"`', "input": "{{step1.result}}"},
            },
        ],
    )
    run = api.executions.start(slow.id)
    until(lambda: api.executions.get(run.id).status == "RUNNING", 10)
    running = cli("executions", "list", "--status", "running")
    assert running.code == 0 and running.out.splitlines()[0].startswith(f"{run.id}  RUNNING")
    assert [e["id"] for e in cli("executions", "list", "--workflow", slow.id, "--json").json] == [
        run.id
    ]
    shown = cli("executions", "show", run.id)
    assert "workflow: slow (version 1)" in shown.out and "step   1 wait" in shown.out
    assert f"execution {run.id}: RUNNING" in shown.out
    cancelled = cli("executions", "cancel", run.id)
    assert cancelled.code == 0 and cancelled.out == f"execution {run.id}: CANCELLED\n"
    resumed = cli("executions", "resume", run.id)
    assert resumed.code == 0 and resumed.out.startswith(f"execution {run.id}: RUNNING (resumed")
    assert cli("executions", "cancel", run.id, "--json").json["status"] == "CANCELLED"
    tail = cli("executions", "tail", run.id)  # a run that is over: its end at once
    assert tail.code == 1 and f"execution {run.id}: CANCELLED" in tail.out
    # a live run: each step as it starts and ends, then the result
    live = api.executions.start(quick.id)
    followed = cli("executions", "tail", live.id)
    assert followed.code == 0, followed
    assert re.search(r"^  step +1 wait +COMPLETED +\d+\.\d ms$", followed.out, re.M)
    assert followed.out.index("step   1 wait") < followed.out.index("step   2 transform")
    assert followed.out.splitlines()[-1] == 'result: "done"'
    assert cli("executions", "show", live.id, "--json").json["result"] == "done"


# -- ingest ----------------------------------------------------------------------------------
def test_ingest_creates_the_collection_and_shows_progress_off_a_terminal(
    cli: Any, api: Linqra, tmp_path: Path
) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "one.md").write_text(
        "# One\n\n" + " ".join(f"Fact {i} about tides." for i in range(300))
    )
    (folder / "two.txt").write_text("The moon pulls the sea twice a day.")
    (folder / "skip.bin").write_bytes(b"\x00\x01")
    missing = cli("ingest", "notes", str(folder))
    assert missing.code == 2
    assert one_line(missing.err).endswith("(use --create to make it)")
    assert "not_found (collection)" in missing.err
    done = cli("ingest", "notes", str(folder), "--create", "--metadata", "source=cli")
    assert done.code == 0, done
    one, two = folder / "one.md", folder / "two.txt"
    assert re.search(rf"^  {one}: uploaded \d+\.\d kB, ingesting$", done.out, re.M)
    assert re.search(rf"^  {one}: \d+/\d+ chunks$", done.out, re.M)
    assert re.search(rf"^  {one}: READY \(\d+ chunks\)$", done.out, re.M)
    assert f"  {two}: READY (1 chunks)" in done.out
    assert done.out.splitlines()[-1] == "2 of 2 file(s) ingested into notes"
    docs = api.knowledge.documents("notes").all()
    assert sorted((d.file_name, d.status) for d in docs) == [
        ("one.md", "READY"),
        ("two.txt", "READY"),
    ]
    assert all(d.metadata == {"source": "cli"} for d in docs)
    again = cli("ingest", "notes", str(two), "--no-wait")
    assert again.code == 0
    assert re.search(rf"^  {two}: already in the collection \(kd_\w+, READY\)$", again.out, re.M)
    assert again.out.splitlines()[-1] == (
        "uploaded 1 file(s) to notes; ingestion continues in the cluster"
    )
    answer = cli("ingest", "notes", str(one), "--json")
    assert answer.code == 0
    [only] = answer.json  # stdout is the answer alone: no progress lines
    assert only["path"] == str(one) and only["outcome"] == "READY"
    assert only["document"]["file_name"] == "one.md" and only["document"]["chunks_total"] > 1
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(make_pdf([None]))
    failed = cli("ingest", "notes", str(scan))
    assert failed.code == 1
    assert f"  {scan}: FAILED: the PDF has no extractable text" in failed.out
    assert cli("ingest", "notes", str(tmp_path / "nowhere")).err == (
        f"linqra ingest: no such file or directory: {tmp_path / 'nowhere'}\n"
    )


# -- chat ------------------------------------------------------------------------------------
def test_chat_streams_the_reply_to_one_message(cli: Any, api: Linqra) -> None:
    helper = api.assistants.create(name="helper", defaultModel=LOCAL)
    said = cli("chat", helper.id, "how do tides work?")
    assert said.code == 0, said
    assert said.out.startswith("[local model] You asked: how do tides work?")
    assert said.out.endswith(")\n") and said.out.count("\n") == 1
    conversation = re.search(r"\(conversation (conv_\w+);", said.err)
    assert conversation and f"linqra chat {helper.id} --conversation" in said.err
    events = [
        json.loads(line) for line in cli("chat", helper.id, "again?", "--json").out.splitlines()
    ]
    names = [e["event"] for e in events]
    assert names[0] == "run.created" and names[-1] == "run.completed"
    assert names.count("message.delta") > 3  # token by token, not the whole reply at once
    # --conversation continues the first one
    more = cli("chat", helper.id, "and the moon?", "--conversation", conversation.group(1))
    assert more.code == 0
    messages = api.conversations.messages(conversation.group(1)).all()
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]


def test_chat_without_a_message_reads_a_conversation_from_stdin(
    cli: Any, api: Linqra, monkeypatch: pytest.MonkeyPatch
) -> None:
    helper = api.assistants.create(name="helper", defaultModel=LOCAL)
    monkeypatch.setattr("sys.stdin", io.StringIO("first question\n\n  second question \n"))
    talked = cli("chat", helper.id)
    assert talked.code == 0, talked
    replies = talked.out.splitlines()
    assert len(replies) == 2
    assert replies[0].startswith("[local model] You asked: first question")
    assert replies[1].startswith("[local model] You asked: second question")
    [conversation] = api.conversations.list(assistant_id=helper.id).all()
    messages = api.conversations.messages(conversation.id).all()
    assert [m.content for m in messages if m.role == "user"] == [
        "first question",
        "second question",
    ]


# -- bad input and no gateway ----------------------------------------------------------------
def test_unknown_ids_and_bad_input_exit_2_naming_what_is_wrong(cli: Any, tmp_path: Path) -> None:
    for command, args, named in [
        ("executions show", ["ex_nope"], "(execution_id): execution 'ex_nope' not found"),
        ("executions tail", ["ex_nope"], "(execution_id): execution 'ex_nope' not found"),
        ("workflows show", ["wf_nope"], "(workflow_id): workflow 'wf_nope' not found"),
        ("run", ["wf_nope"], "(workflow_id): workflow 'wf_nope' not found"),
        ("chat", ["as_nope", "hi"], "(assistant_id): assistant 'as_nope' not found"),
    ]:
        answer = cli(*command.split(), *args)
        assert answer.code == 2 and answer.out == "", (command, answer)
        line = one_line(answer.err)
        assert line.startswith(f"linqra {command}: 404 not_found {named} [request "), line
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"steps": [{"step": 1, "target": "nope"}]}))
    refused = cli("run", str(bad))
    assert refused.code == 2
    assert "400 invalid_request (steps[0].target): unknown step target 'nope'" in refused.err
    assert cli("run", str(bad), "--param", "oops").err == (
        "linqra run: --param needs KEY=VALUE, got 'oops'\n"
    )
    assert cli("run", "missing/file.json").err == "linqra run: no such file: missing/file.json\n"
    nobody = cli("workflows", "list", team=None)
    assert nobody.code == 2 and "give --team TEAM (or set LINQRA_TEAM" in nobody.err


def test_a_gateway_that_is_not_running_is_one_line(cli: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for command, args in [("status", []), ("workflows list", []), ("chat", ["as_1", "hi"])]:
        answer = cli(*command.split(), *args, url=url)
        assert answer.code == 1 and answer.out == "", (command, answer)
        assert one_line(answer.err) == (
            f"linqra {command}: no Linqra gateway answers at {url} — start one with `make run` "
            "(or `linqra up`), or point --url / $LINQRA_URL at a running one"
        )


# -- the installed command -------------------------------------------------------------------
def test_the_installed_command_runs_a_file_and_chats_over_stdin(
    live_url: str, api: Linqra, tmp_path: Path
) -> None:
    env = {**subprocess_env(tmp_path), "LINQRA_URL": live_url, "LINQRA_TEAM": TEAM}
    done = subprocess.run(
        [str(LINQRA), "run", str(EXAMPLES / "parallel_workflow.json"), "--param", "topic=sea"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"topic": "sea"' in done.stdout.splitlines()[-1]
    helper = api.assistants.create(name="helper", defaultModel=LOCAL)
    talked = subprocess.run(
        [str(LINQRA), "chat", helper.id],
        input="hello\nbye\n",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert talked.returncode == 0, talked.stdout + talked.stderr
    assert talked.stdout.count("[local model] You asked: ") == 2
    assert "(conversation conv_" in talked.stderr


def test_the_installed_command_says_when_no_gateway_runs(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    out = subprocess.run(
        [str(LINQRA), "executions", "list", "--url", url, "--team", TEAM],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=subprocess_env(tmp_path),
    )
    assert out.returncode == 1 and out.stdout == ""
    assert one_line(out.stderr).startswith(
        f"linqra executions list: no Linqra gateway answers at {url} — start one with `make run`"
    )


def test_an_unknown_status_is_refused_with_the_statuses_by_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from deployments.cli import main

    with pytest.raises(SystemExit) as refused:
        main(["executions", "list", "--status", "DONE"])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'DONE' (choose from 'PENDING', 'RUNNING', 'COMPLETED'," in err, err
    assert "ExecutionStatus" not in err
