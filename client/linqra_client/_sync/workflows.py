# Generated from linqra_client/_async by scripts/client_codegen.py (unasync): do not edit.
"""Workflows (``client.workflows``) and their executions (``client.executions``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from linqra_client import models
from linqra_client._base import check_id, dump, monotonic, parse, validate
from linqra_client._sync.pagination import Pager
from linqra_client._sync.streams import Connect, follow
from linqra_client.errors import APITimeoutError

if TYPE_CHECKING:
    from linqra_client._sync.client import Linqra

__all__ = ["TERMINAL", "Executions", "Workflows"]

TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"})


def finished(record: models.Execution) -> bool:
    """A run that is over, its ``async`` steps included."""
    return record.status in TERMINAL and not record.pending_async_steps


class Workflows:
    """Stored, versioned workflows: ``/v1/workflows``."""

    def __init__(self, client: Linqra) -> None:
        self._client = client

    def list(self, *, limit: int = 50) -> Pager[models.Workflow]:
        """Every workflow of the team, newest first."""
        return Pager(self._client, "/v1/workflows", models.Workflow, limit=limit)

    def get(self, workflow_id: str) -> models.Workflow:
        return self._client.call(
            models.Workflow, "GET", f"/v1/workflows/{check_id(workflow_id, 'workflow_id')}"
        )

    def create(self, definition: dict[str, Any] | None = None, **fields: Any) -> models.Workflow:
        """A new workflow from ``{name, description?, mode?, params?, timeoutSeconds?, steps}``
        (or ``{name, request}``, a stored Linq request), given as a dict or as keywords."""
        body = validate(models.CreateWorkflowBody, {**(definition or {}), **fields})
        return self._client.call(models.Workflow, "POST", "/v1/workflows", json=dump(body))

    def update(
        self,
        workflow_id: str,
        definition: dict[str, Any],
        *,
        if_version: int | None = None,
    ) -> models.Workflow:
        """A new version; with ``if_version`` only if that is still the current one
        (:class:`~linqra_client.errors.Conflict` otherwise)."""
        body = validate(models.UpdateWorkflowBody, definition)
        headers = {"If-Match": str(if_version)} if if_version is not None else None
        return self._client.call(
            models.Workflow,
            "PUT",
            f"/v1/workflows/{check_id(workflow_id, 'workflow_id')}",
            json=dump(body),
            headers=headers,
        )

    def delete(self, workflow_id: str) -> None:
        self._client.request("DELETE", f"/v1/workflows/{check_id(workflow_id, 'workflow_id')}")

    def versions(self, workflow_id: str, *, limit: int = 50) -> Pager[models.WorkflowVersion]:
        """Every version, newest first."""
        path = f"/v1/workflows/{check_id(workflow_id, 'workflow_id')}/versions"
        return Pager(self._client, path, models.WorkflowVersion, limit=limit)

    def version(self, workflow_id: str, version: int) -> models.WorkflowVersion:
        return self._client.call(
            models.WorkflowVersion,
            "GET",
            f"/v1/workflows/{check_id(workflow_id, 'workflow_id')}/versions/{int(version)}",
        )

    def rollback(self, workflow_id: str, version: int) -> models.Workflow:
        """A new version with ``version``'s definition."""
        return self._client.call(
            models.Workflow,
            "POST",
            f"/v1/workflows/{check_id(workflow_id, 'workflow_id')}/versions/{int(version)}/rollback",
        )


class Executions:
    """Runs of workflows: start, follow, wait for, cancel and resume them."""

    def __init__(self, client: Linqra) -> None:
        self._client = client

    def list(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> Pager[models.ExecutionSummary]:
        """The team's executions, newest first; of one workflow, or in one ``status``
        (PENDING RUNNING COMPLETED FAILED CANCELLED TIMEOUT)."""
        params = {"workflow_id": workflow_id, "status": status}
        return Pager(
            self._client, "/v1/executions", models.ExecutionSummary, params=params, limit=limit
        )

    def get(self, execution_id: str) -> models.Execution:
        """The record: status, every step's latest run, the result."""
        return self._client.call(
            models.Execution, "GET", f"/v1/executions/{check_id(execution_id, 'execution_id')}"
        )

    def start(
        self,
        workflow_id: str,
        params: dict[str, Any] | None = None,
        *,
        executed_by: str | None = None,
    ) -> models.ExecutionAccepted:
        """Start a run of a stored workflow and return at once (``202``)."""
        body = validate(
            models.ExecuteRequest,
            {"params": params or {}, **({"executedBy": executed_by} if executed_by else {})},
        )
        return self._client.call(
            models.ExecutionAccepted,
            "POST",
            f"/v1/workflows/{check_id(workflow_id, 'workflow_id')}/execute",
            json=dump(body),
        )

    def run(
        self,
        workflow_id: str,
        params: dict[str, Any] | None = None,
        *,
        wait: bool = True,
        timeout: float | None = None,
        executed_by: str | None = None,
    ) -> models.Execution:
        """Run a stored workflow; with ``wait`` (the default) return the finished record,
        following the run past the gateway's own wait (``http.wait_timeout_seconds``) for up
        to ``timeout`` seconds (:class:`~linqra_client.errors.APITimeoutError` after)."""
        body = validate(
            models.ExecuteRequest,
            {"params": params or {}, **({"executedBy": executed_by} if executed_by else {})},
        )
        response = self._client.request(
            "POST",
            f"/v1/workflows/{check_id(workflow_id, 'workflow_id')}/execute",
            json=dump(body),
            params={"wait": "true" if wait else None},
        )
        return self._record(response.json(), wait=wait, timeout=timeout)

    def _record(
        self, data: dict[str, Any], *, wait: bool, timeout: float | None
    ) -> models.Execution:
        """The record an execute or resume answered with: as it is, or followed to its end."""
        if "status" in data and "steps" in data:
            record = parse(models.Execution, data)
            if not wait or finished(record):
                return record
        elif not wait:
            return self.get(data["id"])
        return self.wait(data["id"], timeout=timeout)

    def wait(self, execution_id: str, *, timeout: float | None = None) -> models.Execution:
        """The record once the run is over (its ``async`` steps included)."""
        deadline = None if timeout is None else monotonic() + timeout
        last: models.Execution | None = None
        for record in self.watch(execution_id):
            last = record
            if deadline is not None and monotonic() > deadline and not finished(record):
                raise APITimeoutError(
                    f"execution {execution_id} still {record.status} after {timeout} s"
                )
        assert last is not None
        return last

    def watch(self, execution_id: str) -> Iterator[models.Execution]:
        """The record now and each time it changes (a step starts, retries, finishes), until
        the run is over. A cut connection is resumed where it left off."""
        path = f"/v1/executions/{check_id(execution_id, 'execution_id')}/stream"
        first = Connect("GET", path)
        for sse in follow(
            self._client,
            first,
            resume=lambda last: Connect("GET", path, last_event_id=last),
            is_last=lambda sse: finished(parse(models.Execution, json.loads(sse.data))),
        ):
            yield parse(models.Execution, json.loads(sse.data))

    def steps(self, execution_id: str) -> Iterator[models.StepRun]:
        """Each step run as it changes (started, retried, finished), until the run is over."""
        seen: dict[tuple[int, int], str] = {}
        for record in self.watch(execution_id):
            for step in record.steps or []:
                key = (step.step, step.run or 1)
                if seen.get(key) != step.status:
                    seen[key] = step.status
                    yield step

    def cancel(self, execution_id: str) -> models.Execution:
        """Stop a run: running steps are cancelled (an LLM call's stream is closed)."""
        return self._client.call(
            models.Execution,
            "POST",
            f"/v1/executions/{check_id(execution_id, 'execution_id')}/cancel",
        )

    def resume(
        self, execution_id: str, *, wait: bool = False, timeout: float | None = None
    ) -> models.Execution:
        """Run a FAILED, TIMEOUT or CANCELLED execution again from its first unfinished step
        (:class:`~linqra_client.errors.Conflict` for any other); with ``wait`` the finished
        record."""
        response = self._client.request(
            "POST",
            f"/v1/executions/{check_id(execution_id, 'execution_id')}/resume",
            params={"wait": "true" if wait else None},
        )
        return self._record(response.json(), wait=wait, timeout=timeout)
