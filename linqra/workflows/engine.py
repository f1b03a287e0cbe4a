"""The workflow engine: decides what runs when, records everything, does no step I/O itself.

The engine walks a definition (sequential or DAG), resolves each step's
inputs from the params and earlier results, evaluates conditions and jumps,
consults the step cache, and hands each step to a :class:`StepExecutor` —
in-process for tests and drivers without Ray, Ray tasks and async actor pools
in production (``actors/executor.py``). In DAG mode every step whose
dependencies are done is submitted at once; nothing waits step by step.

Records — step runs written as they start and end, the heartbeat that keeps the claim, the
execution's final record — are the other half, :mod:`linqra.workflows.step_runs`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
from typing import Any, Protocol

from linqra.cache import Cache
from linqra.clock import iso
from linqra.config import ExecutionSettings
from linqra.errors import LinqraError
from linqra.logs import bind
from linqra.status import STEP_FAILED, STEP_FINISHED, ExecutionStatus, StepStatus
from linqra.steps.base import StepCall, StepContext, TargetRegistry
from linqra.steps.runtime import StepOutcome, run_step_call
from linqra.tracing import span
from linqra.workflows.async_steps import AsyncStepQueue
from linqra.workflows.calls import cache_key, canonical_json, execute, observe_step, step_call
from linqra.workflows.conditions import evaluate_condition
from linqra.workflows.definition import Step, WorkflowDefinition
from linqra.workflows.interpolation import MissingReference, Scope
from linqra.workflows.records import ClaimLost, ExecutionRepository, check_record_size
from linqra.workflows.step_runs import (
    PureRecords,
    RecordBatch,
    RunningRecord,
    RunState,
    StepRunRecorder,
    cancel_record,
)

__all__ = ["LocalExecutor", "StepExecutor", "WorkflowEngine"]

log = logging.getLogger(__name__)

DEFINITION_CACHE_SIZE = 256
"""Parsed definitions of stored workflow versions the engine keeps."""


class StepExecutor(Protocol):
    """Runs step calls of kind ``task`` and ``io`` somewhere; cancelling the await cancels the work."""

    async def execute(self, call: StepCall) -> StepOutcome: ...


class LocalExecutor:
    """Runs every call as a coroutine in this process (tests, embedded drivers)."""

    def __init__(self, registry: TargetRegistry, ctx: StepContext) -> None:
        self.registry = registry
        self.ctx = ctx

    async def execute(self, call: StepCall) -> StepOutcome:
        return await run_step_call(call, self.registry, self.ctx)


class _StepFailed(Exception):
    def __init__(self, step: int, status: StepStatus) -> None:
        super().__init__(step, status)
        self.step = step
        self.status = status


class WorkflowEngine(StepRunRecorder):
    """Runs claimed executions to a terminal, recorded state."""

    def __init__(
        self,
        *,
        repo: ExecutionRepository,
        registry: TargetRegistry,
        executor: StepExecutor,
        cache: Cache,
        ctx: StepContext,
        settings: ExecutionSettings,
        runner_id: str,
        async_queue: AsyncStepQueue | None = None,
    ) -> None:
        self.async_queue = async_queue  # None: async steps run here, in the background
        self.repo = repo
        self.registry = registry
        self.executor = executor
        self.cache = cache
        self.ctx = ctx
        self.settings = settings
        self.runner_id = runner_id
        self._definitions: dict[tuple[str, Any, Any], WorkflowDefinition] = {}
        self._background: set[asyncio.Task[Any]] = (
            set()
        )  # async steps outlive their execution's run()

    # -- entry point ------------------------------------------------------------
    async def run(
        self, team_id: str, execution_id: str, *, fresh: bool = False, claim: int | None = None
    ) -> dict[str, Any]:
        """Drive a claimed (RUNNING, ``runner_id`` = ours) execution to its end; return the record.
        ``fresh``: claimed from PENDING, so there are no earlier step runs to look for; ``claim``:
        the number the claim set (read from the record when not given). Raises
        :class:`ClaimLost` when another runner claimed it since."""
        doc = await self.repo.get(team_id, execution_id)
        if claim is not None:
            doc["claim"] = claim  # ours, whatever a newer claim has written since
        attributes = {"linqra.team": team_id, "linqra.execution_id": execution_id}
        with (
            span("execution", parent=doc.get("traceparent"), attributes=attributes),
            bind(team=team_id, execution_id=execution_id, request_id=doc.get("request_id")),
        ):
            return await self._run(doc, fresh)

    async def _run(self, doc: dict[str, Any], fresh: bool) -> dict[str, Any]:
        team_id, execution_id = doc["team_id"], doc["id"]
        run = RunState(
            team_id,
            execution_id,
            self._definition(team_id, doc),
            doc.get("params") or {},
            executed_by=doc.get("executed_by"),
            started_at=doc.get("started_at"),
            claim=int(doc.get("claim") or 0),
        )
        run.behind = PureRecords(self.repo, team_id, run.claim)
        run.writes = RecordBatch(self.repo, team_id, run.claim)
        earlier = (
            {} if fresh else await self.interrupt_running_steps(team_id, execution_id, run.claim)
        )
        for number, prior in earlier.items():
            run.run_counts[number] = int(prior["run"])
            if prior["status"] == StepStatus.COMPLETED:
                run.results[number] = prior.get("output")
                run.reused.add(number)
            elif prior["status"] == StepStatus.SKIPPED and prior.get("skip_reason") == "condition":
                run.reused.add(number)
            elif prior["status"] not in STEP_FINISHED and prior.get("queued_call"):
                run.reused.add(number)  # still on the queue or with a worker: not queued twice
                run.queued.add(number)
        log.info(
            "execution start team=%s run_id=%s steps=%d reused=%d",
            team_id,
            execution_id,
            len(run.definition.steps),
            len(run.reused),
        )
        me = asyncio.current_task()
        assert me is not None
        beat = asyncio.create_task(self._heartbeat(run, me))
        status: ExecutionStatus = ExecutionStatus.COMPLETED
        error: dict[str, Any] | None = None
        try:
            async with asyncio.timeout(run.definition.timeoutSeconds):
                await self._drive(run)
        except _StepFailed as exc:
            timed_out = exc.status == StepStatus.TIMEOUT
            status = ExecutionStatus.TIMEOUT if timed_out else ExecutionStatus.FAILED
            error = run.failure
        except TimeoutError:
            status = ExecutionStatus.TIMEOUT
            error = {
                "code": "workflow_timeout",
                "message": f"workflow ran past its {run.definition.timeoutSeconds:g}s timeout",
            }
        except (asyncio.CancelledError, ClaimLost) as exc:
            if run.lost_claim or isinstance(exc, ClaimLost):
                run.lost_claim = True  # its async steps' tasks write nothing more either
                if run.behind is not None:
                    run.behind.drop()
                for task in list(run.background):
                    task.cancel()
                raise
            if me.cancelling():
                me.uncancel()
            status = ExecutionStatus.CANCELLED
            error = {"code": "cancelled", "message": "execution cancelled"}
        except Exception as exc:  # a bug or a store failure: never leave the execution RUNNING
            log.exception("execution %s crashed", execution_id)
            status = ExecutionStatus.FAILED
            error = {"code": "engine_error", "message": f"{type(exc).__name__}: {exc}"}
        finally:
            beat.cancel()
        return await self._finish(run, status, error)

    # -- drivers ----------------------------------------------------------------
    def _definition(self, team_id: str, doc: dict[str, Any]) -> WorkflowDefinition:
        """The execution's definition, parsed once per stored workflow version (a version
        never changes; an inline definition is parsed each time)."""
        key = (team_id, doc.get("workflow_id"), doc.get("workflow_version"))
        if key[1] is None or key[2] is None:
            return WorkflowDefinition.model_validate(doc["definition"])
        definition = self._definitions.pop(key, None)
        if definition is None:
            definition = WorkflowDefinition.model_validate(doc["definition"])
        self._definitions[key] = definition  # most recently used last
        if len(self._definitions) > DEFINITION_CACHE_SIZE:
            del self._definitions[next(iter(self._definitions))]
        return definition

    async def _drive(self, run: RunState) -> None:
        if run.definition.mode == "dag":
            await self._drive_dag(run)
        else:
            await self._drive_sequential(run)

    async def _drive_sequential(self, run: RunState) -> None:
        steps = run.definition.ordered()
        position = {s.step: i for i, s in enumerate(steps)}
        i = 0
        while i < len(steps):
            step = steps[i]
            i += 1
            if step.async_:
                self._spawn_async(run, step)
                continue
            status = await self._step(run, step)
            if status in STEP_FAILED:
                raise _StepFailed(step.step, status)
            if status != StepStatus.COMPLETED or step.jump is None:
                continue
            if not await self._jump_taken(run, step):
                continue
            target = step.jump.targetStep
            if not target:
                for rest in steps[i:]:
                    await self._record_skip(
                        run, rest, "jump", f"step {step.step} jumped to the end"
                    )
                return
            i = position[target]

    async def _drive_dag(self, run: RunState) -> None:
        deps = run.definition.dependencies()
        tasks: dict[int, asyncio.Task[StepStatus]] = {}
        started: set[int] = set()

        async def node(step: Step) -> StepStatus:
            for dep in sorted(deps[step.step]):
                await asyncio.shield(tasks[dep])
            started.add(step.step)
            status = await self._step(run, step)
            if status in STEP_FAILED:
                raise _StepFailed(step.step, status)
            return status

        for step in run.definition.ordered():
            if step.async_:
                self._spawn_async(run, step)
                continue
            tasks[step.step] = asyncio.create_task(node(step), name=f"step{step.step}")
        # async steps are nobody's dependency (validated), so every dep is in tasks. One
        # gather (a callback a task), not a loop of asyncio.wait(FIRST_COMPLETED), which adds
        # and removes a callback on every pending task at each wake-up
        try:
            await asyncio.gather(*tasks.values())  # raises the first _StepFailed
        except BaseException as exc:
            pending = [task for task in tasks.values() if not task.done()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if isinstance(exc, _StepFailed):
                for number, task in tasks.items():
                    if number not in started and task.cancelled():
                        await self._record_skip(
                            run,
                            run.definition.step_map()[number],
                            "upstream",
                            f"not run: step {exc.step} failed",
                        )
            raise

    def _spawn_async(self, run: RunState, step: Step) -> None:
        async def background() -> None:
            status = StepStatus.FAILED
            try:
                status = await self._step(run, step)
            finally:
                if (  # queued: a worker finishes it (the record says so when read)
                    status != StepStatus.QUEUED and not run.lost_claim
                ):
                    run.async_done.add(step.step)
                    async with run.lock:
                        await self.repo.set_pending_async(
                            run.team_id, run.execution_id, self._pending_async(run)
                        )

        task = asyncio.create_task(background(), name=f"async-step{step.step}")
        run.background.add(task)
        self._background.add(task)
        task.add_done_callback(run.background.discard)
        task.add_done_callback(self._background.discard)

    # -- one step ---------------------------------------------------------------
    async def _step(self, run: RunState, step: Step) -> StepStatus:
        attributes = {"linqra.step": step.step, "linqra.target": step.target}
        with span(f"step {step.step}", attributes=attributes):
            return await self._run_step(run, step)

    async def _run_step(self, run: RunState, step: Step) -> StepStatus:
        if step.step in run.reused:
            run.reused.discard(step.step)  # reuse once; a jump back runs it again
            if step.step in run.queued:
                return StepStatus.QUEUED
            if step.step in run.results:
                if not step.async_:
                    run.last_completed = step.step
                return StepStatus.COMPLETED
            return StepStatus.SKIPPED
        run.step_runs += 1
        if run.step_runs > self.settings.max_step_runs:
            run.failure = {
                "code": "too_many_step_runs",
                "step": step.step,
                "message": f"more than {self.settings.max_step_runs} step runs (a jump loop?)",
            }
            raise _StepFailed(step.step, StepStatus.FAILED)
        target = self.registry.get(step.target)
        # a pure step's record is written behind wherever it runs: inline or by a worker
        pure = target.pure and not step.async_ and step.cacheConfig is None
        if not pure:  # nothing with an effect starts on an unrecorded result
            await self._write_behind(run)
        record = self._new_run(run, step)
        scope = Scope(run.params, run.results)
        try:
            if step.condition and not evaluate_condition(step.condition, scope):
                await self._record_skip(
                    run, step, "condition", f"condition is false: {step.condition}", record
                )
                return StepStatus.SKIPPED
            call = step_call(
                run, step, scope, self.settings, url_intent=target.url_intent, kind=target.kind
            )
        except MissingReference as exc:
            return await self._fail_before_start(
                run, record, "missing_reference", f"step {step.step}: {exc}", exc.path
            )
        except LinqraError as exc:
            return await self._fail_before_start(
                run, record, exc.code, f"step {step.step}: {exc.message}", exc.field
            )
        inputs = call.inputs()
        try:
            check_record_size(inputs, "params")
        except LinqraError as exc:  # refused before anything oversized is written
            code = "inputs_too_large" if exc.status == 413 else "inputs_not_json"
            return await self._fail_before_start(
                run, record, code, f"step {step.step}: resolved {exc.message}", "params"
            )
        record["inputs"] = inputs
        record["executor"] = call.kind
        key = cache_key(run, step, call, scope)
        if key is not None:
            cached = await self.cache.get(key)
            if cached is not None:
                now = iso()
                record.update(
                    status=StepStatus.COMPLETED,
                    output=json.loads(cached),
                    cache_hit=True,
                    attempts=0,
                    started_at=now,
                    finished_at=now,
                    duration_ms=0.0,
                )
                await self.repo.save_step_run(run.team_id, record, run.claim)
                self._count(run, record, StepStatus.COMPLETED, executor="cache")
                run.results[step.step] = record["output"]
                if not step.async_:
                    run.last_completed = step.step
                return StepStatus.COMPLETED
        if step.async_ and self.async_queue is not None:
            record.update(
                status=StepStatus.QUEUED,
                queued_at=iso(),
                cache_hit=False,
                queued_call=dataclasses.asdict(call),  # what the reaper re-queues if it is lost
            )
            await self.repo.save_step_run(run.team_id, record, run.claim)
            await self.async_queue.enqueue(run.team_id, record, call)
            return StepStatus.QUEUED
        record.update(status=StepStatus.RUNNING, started_at=iso(), cache_hit=False)
        if pure:
            return await self._pure_step(run, step, call, record)
        assert run.writes is not None
        running = RunningRecord(run.writes, record)
        try:
            outcome = await self._call(call)
        except asyncio.CancelledError:
            cancel_record(record)
            await asyncio.shield(running.end(record))
            raise
        except BaseException:
            await asyncio.shield(running.settle())
            raise
        record.update(outcome.record_fields())
        observe_step(self.ctx.system.metrics, call, outcome)
        await running.end(record)
        if outcome.status == StepStatus.COMPLETED:
            run.results[step.step] = outcome.output
            if not step.async_:
                run.last_completed = step.step
            if key is not None and step.cacheConfig is not None:
                await self.cache.set(
                    key, canonical_json(outcome.output).encode(), step.cacheConfig.ttl
                )
        else:
            run.failure = {"step": step.step, **(outcome.error or {})}
        # a completed step's line is DEBUG: its record says the same, and at INFO the line was a
        # fifth of a 1,000-step fan-out's CPU (docs/perf/ray-profile.md); any other end is INFO
        log.log(
            logging.DEBUG if outcome.status == StepStatus.COMPLETED else logging.INFO,
            "step done team=%s run_id=%s step=%s status=%s attempts=%s",
            run.team_id,
            run.execution_id,
            step.step,
            outcome.status,
            outcome.attempts,
        )
        return outcome.status

    async def _call(self, call: StepCall) -> StepOutcome:
        """Run ``call`` here (inline) or by its executor's worker."""
        if call.kind == "inline":
            return await run_step_call(call, self.registry, self.ctx)
        return await execute(functools.partial(self.executor.execute, call), call)

    async def _pure_step(
        self, run: RunState, step: Step, call: StepCall, record: dict[str, Any]
    ) -> StepStatus:
        """A pure step: its end record written behind (or at once when it failed: the
        execution ends on it). Inline it has no RUNNING record; run by a worker (a CPU step
        pinned to ``executor: task``, say) it has one once it has run for the grace period —
        written after the records held back before it, so a reader never sees a step running
        whose predecessors are not recorded."""
        assert run.behind is not None
        running = None
        if call.kind != "inline":
            assert run.writes is not None
            running = RunningRecord(run.writes, record, before=run.behind.flush)
        try:
            outcome = await self._call(call)
        except asyncio.CancelledError:  # recorded with the rest, before the execution's end
            if running is not None:
                await asyncio.shield(running.settle())
            cancel_record(record)
            run.behind.add(record)
            raise
        except BaseException:
            if running is not None:
                await asyncio.shield(running.settle())
            raise
        if running is not None:
            await running.settle()
        record.update(outcome.record_fields())
        observe_step(self.ctx.system.metrics, call, outcome)
        if outcome.status == StepStatus.COMPLETED:
            run.behind.add(record)
            run.results[step.step] = outcome.output
            run.last_completed = step.step
        else:
            await self._write_behind(run)
            await self.repo.save_step_run(run.team_id, record, run.claim)
            run.failure = {"step": step.step, **(outcome.error or {})}
        return outcome.status

    async def _jump_taken(self, run: RunState, step: Step) -> bool:
        assert step.jump is not None
        try:
            return evaluate_condition(step.jump.condition, Scope(run.params, run.results))
        except MissingReference as exc:
            run.failure = {
                "step": step.step,
                "code": "missing_reference",
                "field": exc.path,
                "message": f"step {step.step} jump: {exc}",
            }
            raise _StepFailed(step.step, StepStatus.FAILED) from None
