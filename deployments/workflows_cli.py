"""``linqra run``, ``linqra workflows`` and ``linqra executions``: workflows and their runs
through the gateway.

``linqra run FILE`` stores a workflow file as the team's workflow of that name (the file's
``name``, else its stem; a Linq request file's ``query`` becomes its steps, mode and params) —
a new version only when the steps, mode or params differ from the stored ones — and runs it;
``linqra run WORKFLOW_ID`` runs a stored one. Both print each step as it starts and ends, with a
progress bar on a terminal, then the result; the exit status is 0 when the run COMPLETED, 1
otherwise. ``--ray`` (or ``--address``) runs the file as a Ray driver instead
(:mod:`deployments.ray_cli`), which is what ``ray job submit`` uses.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm  # type: ignore[import-untyped]  # no stubs (types-tqdm is not installed)

from deployments.remote_cli import (
    UsageError,
    emit_json,
    parse_params,
    remote,
    say,
    wants_json,
)
from linqra.status import EXECUTION_TERMINAL, STEP_FINISHED, ExecutionStatus

if TYPE_CHECKING:  # linqra_client is imported where a command runs (deployments/remote_cli.py)
    from linqra_client import Linqra, models

__all__ = ["add_run_command", "add_workflow_commands", "follow", "workflow_body"]

TERMINAL = EXECUTION_TERMINAL
STEP_DONE = STEP_FINISHED
STATUSES = tuple(status.value for status in ExecutionStatus)  # argparse shows them as given


# -- the parsers ---------------------------------------------------------------------------------
def add_run_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``run`` to the ``linqra`` command's subparsers."""
    run = sub.add_parser(
        "run",
        parents=[common],
        help="run a workflow file (ours or a Linq request) or a stored workflow, live",
    )
    run.add_argument("target", metavar="FILE|WORKFLOW_ID")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="follow the run to its end (default); --no-wait: start it and print its id",
    )
    run.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait (3600)")
    run.add_argument(
        "--ray",
        action="store_true",
        help="run the file as a Ray driver through the cluster's runner (as `ray job submit` does)",
    )
    run.add_argument(
        "--address",
        help="with --ray: the Ray cluster (default: $RAY_ADDRESS, a running `linqra up`'s, "
        "else a local one); implies --ray",
    )
    run.set_defaults(func=cmd_run, name="run")


def add_workflow_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``workflows`` and ``executions`` to the ``linqra`` command's subparsers."""
    workflows = sub.add_parser("workflows", parents=[common], help="the team's stored workflows")
    actions = workflows.add_subparsers(dest="action", required=True)
    listed = actions.add_parser("list", parents=[common], help="the workflows, newest first")
    listed.add_argument("--limit", type=int, default=50)
    listed.set_defaults(func=remote(_workflows_list), name="workflows list")
    show = actions.add_parser("show", parents=[common], help="a workflow and its steps")
    show.add_argument("id", metavar="WORKFLOW_ID")
    show.set_defaults(func=remote(_workflows_show), name="workflows show")

    executions = sub.add_parser("executions", parents=[common], help="runs of workflows")
    actions = executions.add_subparsers(dest="action", required=True)
    listed = actions.add_parser("list", parents=[common], help="the runs, newest first")
    listed.add_argument("--status", choices=STATUSES, type=str.upper)
    listed.add_argument("--workflow", metavar="WORKFLOW_ID")
    listed.add_argument("--limit", type=int, default=50)
    listed.set_defaults(func=remote(_executions_list), name="executions list")
    for action, handler, text in (
        ("show", _executions_show, "a run: its status, every step, the result"),
        ("tail", _executions_tail, "follow a run live until it ends"),
        ("cancel", _executions_cancel, "stop a run (its running steps are cancelled)"),
        ("resume", _executions_resume, "run a FAILED, TIMEOUT or CANCELLED run again"),
    ):
        parser = actions.add_parser(action, parents=[common], help=text)
        parser.add_argument("id", metavar="EXECUTION_ID")
        if action == "resume":
            parser.add_argument("--wait", action="store_true", help="follow it live to its end")
        parser.add_argument("--timeout", type=float, default=3600.0, help=argparse.SUPPRESS)
        parser.set_defaults(func=remote(handler), name=f"executions {action}")


# -- linqra run ----------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    if args.ray or args.address:
        from deployments.ray_cli import cmd_run_ray

        return cmd_run_ray(args)
    return remote(_run)(args)


def workflow_body(path: Path) -> dict[str, Any]:
    """A workflow file as the body of ``POST /v1/workflows``: the file's ``name`` (else its
    stem) and description, with the definition :func:`~deployments.ray_cli.load_workflow`
    reads from it (our shape, or a Linq request's ``query``)."""
    from deployments.ray_cli import load_workflow

    definition, _ = load_workflow(path)
    data = json.loads(path.read_text())
    name = data.get("name") if isinstance(data.get("name"), str) and data["name"] else path.stem
    body = {"name": name, **definition}
    if isinstance(data.get("description"), str):
        body["description"] = data["description"]
    return body


def _store(client: Linqra, path: Path) -> models.Workflow:
    """The team's workflow of the file's name, made or brought up to date from the file."""
    body = workflow_body(path)
    for workflow in client.workflows.list(limit=100):
        if workflow.name != body["name"]:
            continue
        keys = [key for key in ("steps", "mode", "params") if key in body]
        if all(getattr(workflow, key, None) == body[key] for key in keys):
            return workflow
        return client.workflows.update(workflow.id, body)
    return client.workflows.create(body)


def _run(client: Linqra, args: argparse.Namespace) -> int:
    params = parse_params(args.param)
    path = Path(args.target)
    if path.is_file():
        workflow = _store(client, path)
        workflow_id = workflow.id
        if not wants_json(args):
            say(f"workflow {workflow.id}: {workflow.name}, version {workflow.version}")
    elif path.suffix or "/" in args.target:
        raise UsageError(f"no such file: {args.target}")
    else:
        workflow_id = args.target
    accepted = client.executions.start(workflow_id, params, executed_by="linqra-run")
    if not args.wait:
        if wants_json(args):
            emit_json(accepted)
        else:
            follow_it = f"linqra executions tail {accepted.id}"
            say(f"execution {accepted.id}: {accepted.status} (follow it: {follow_it})")
        return 0
    return _follow_to_end(client, args, accepted.id)


# -- following a run -----------------------------------------------------------------------------
def _step_line(step: models.StepRun) -> str:
    run = f" (run {step.run})" if step.run and step.run > 1 else ""
    line = f"  step {step.step:>3} {(step.target or '?'):<18} {step.status:<10}"
    if step.status in STEP_DONE:
        line += f" {step.duration_ms:8.1f} ms" if step.duration_ms is not None else "      n/a   "
    if isinstance(step.error, dict) and step.error.get("message"):
        line += f"  {str(step.error['message'])[:120]}"
    return line + run


def follow(
    client: Linqra, execution_id: str, *, timeout: float, quiet: bool = False
) -> models.Execution:
    """The record once the run is over, each step printed as it starts and ends (unless
    ``quiet``), with a bar of the steps done on a terminal."""
    from linqra_client import APITimeoutError

    seen: dict[tuple[int, int], str] = {}
    bar: tqdm[Any] | None = None
    deadline = time.monotonic() + timeout
    last: models.Execution | None = None
    try:
        for record in client.executions.watch(execution_id):
            last = record
            if bar is None:  # the first record says how many steps there are
                steps = len((record.definition or {}).get("steps") or []) or None
                bar = tqdm(
                    desc=execution_id,
                    total=steps,
                    unit="step",
                    disable=quiet or not sys.stderr.isatty(),
                    leave=False,
                    file=sys.stderr,
                )
            done = len({s.step for s in record.steps or [] if s.status in STEP_DONE})
            bar.n = min(done, bar.total or done)  # drawn again after each line written
            for step in record.steps or []:
                key = (step.step, step.run or 1)
                if seen.get(key) != step.status and step.status not in ("PENDING", "QUEUED"):
                    seen[key] = step.status
                    if not quiet:
                        tqdm.write(_step_line(step), file=sys.stdout)
            bar.refresh()
            if time.monotonic() > deadline and record.status not in TERMINAL:
                raise APITimeoutError(
                    f"execution {execution_id} still {record.status} after {timeout:.0f} s "
                    f"(it goes on: linqra executions tail {execution_id})"
                )
    except KeyboardInterrupt:
        print(f"\n(the run goes on: linqra executions cancel {execution_id})", file=sys.stderr)
        raise
    finally:
        if bar is not None:
            bar.close()
    assert last is not None
    return last


def _summary(record: models.Execution) -> None:
    took = f"{record.duration_ms:.0f} ms" if record.duration_ms is not None else "n/a"
    say(f"execution {record.id}: {record.status} in {took}")
    if record.error and record.status != "COMPLETED":
        message = record.error.get("message") if isinstance(record.error, dict) else record.error
        say(f"error: {message}")
    say("result: " + json.dumps(record.result, default=str)[:2000])


def _follow_to_end(client: Linqra, args: argparse.Namespace, execution_id: str) -> int:
    if not wants_json(args):
        say(f"execution {execution_id}: following it (Ctrl-C stops following, not the run)")
    record = follow(client, execution_id, timeout=args.timeout, quiet=wants_json(args))
    if wants_json(args):
        emit_json(record)
    else:
        _summary(record)
    return 0 if record.status == "COMPLETED" else 1


# -- linqra workflows ----------------------------------------------------------------------------
def _workflows_list(client: Linqra, args: argparse.Namespace) -> int:
    page = client.workflows.list(limit=_limit(args.limit)).page()
    if wants_json(args):
        emit_json(page.items)
        return 0
    for wf in page.items:
        steps = len(wf.steps or [])
        say(f"{wf.id}  v{wf.version:<3} {wf.mode or '':<10} {steps:>3} step(s)  {wf.name}")
    say(f"({len(page.items)} of {page.total} workflow(s))")
    return 0


def _workflows_show(client: Linqra, args: argparse.Namespace) -> int:
    wf = client.workflows.get(args.id)
    if wants_json(args):
        emit_json(wf)
        return 0
    say(f"workflow {wf.id}: {wf.name}, version {wf.version}, mode {wf.mode}")
    if wf.description:
        say(f"  {wf.description}")
    if wf.params:
        say(f"params: {json.dumps(wf.params, default=str)}")
    for step in wf.steps or []:
        what = " ".join(str(step[k]) for k in ("action", "intent") if step.get(k))
        say(f"  step {step.get('step', '?'):>3} {step.get('target', '?'):<18} {what}")
    return 0


# -- linqra executions ---------------------------------------------------------------------------
def _limit(limit: int) -> int:
    if not 1 <= limit <= 100:
        raise UsageError(f"--limit must be from 1 to 100, got {limit}")
    return limit


def _executions_list(client: Linqra, args: argparse.Namespace) -> int:
    pager = client.executions.list(
        status=args.status, workflow_id=args.workflow, limit=_limit(args.limit)
    )
    page = pager.page()
    if wants_json(args):
        emit_json(page.items)
        return 0
    for ex in page.items:
        took = f"{ex.duration_ms:.0f} ms" if ex.duration_ms is not None else ""
        name = ex.workflow_name or ex.workflow_id or "(inline)"
        say(f"{ex.id}  {ex.status:<10} {ex.created_at[:19]}  {took:>10}  {name}")
    say(f"({len(page.items)} of {page.total} execution(s))")
    return 0


def _executions_show(client: Linqra, args: argparse.Namespace) -> int:
    record = client.executions.get(args.id)
    if wants_json(args):
        emit_json(record)
        return 0
    name = record.workflow_name or record.workflow_id or "an inline definition"
    version = f" (version {record.workflow_version})" if record.workflow_version else ""
    say(f"workflow: {name}{version}")
    for step in record.steps or []:
        say(_step_line(step))
    _summary(record)
    return 0


def _executions_tail(client: Linqra, args: argparse.Namespace) -> int:
    client.executions.get(args.id)  # an unknown id: one clear NotFound before any stream
    return _follow_to_end(client, args, args.id)


def _executions_cancel(client: Linqra, args: argparse.Namespace) -> int:
    record = client.executions.cancel(args.id)
    if wants_json(args):
        emit_json(record)
    else:
        say(f"execution {record.id}: {record.status}")
    return 0


def _executions_resume(client: Linqra, args: argparse.Namespace) -> int:
    record = client.executions.resume(args.id)
    if args.wait:
        return _follow_to_end(client, args, args.id)
    if wants_json(args):
        emit_json(record)
    else:
        follow_it = f"linqra executions tail {record.id}"
        say(f"execution {record.id}: {record.status} (resumed; follow it: {follow_it})")
    return 0
