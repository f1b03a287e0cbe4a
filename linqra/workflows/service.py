"""Stored workflows with versions, and the creation of execution records.

A workflow is ``{id, created_at, deleted_at}`` plus its versions; every create
or update inserts a version document ``{workflow_id, version, name,
description, definition}`` (unique on ``workflow_id, version``) and that one
insert is the whole write, so a crash never leaves half a version. The
current version is the highest. Rollback inserts a new version equal to an
old one. Deleting a workflow hides it (executions keep pointing at it).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from linqra.clock import iso, new_id
from linqra.errors import Conflict, NotFound, ValidationError
from linqra.logs import bound as bound_fields
from linqra.steps.base import TargetRegistry
from linqra.store import Document, DocumentStore, IndexSpec
from linqra.tracing import trace_id, traceparent
from linqra.validation import format_pydantic_error
from linqra.workflows.definition import WorkflowDefinition, parse_definition
from linqra.workflows.models import Workflow, WorkflowVersion
from linqra.workflows.records import INDEXES as EXECUTION_INDEXES
from linqra.workflows.records import ExecutionRepository

__all__ = ["INDEXES", "WorkflowInput", "WorkflowService"]

WORKFLOWS = "workflows"
VERSIONS = "workflow_versions"
INDEXES = [
    IndexSpec(WORKFLOWS, ("created_at",)),
    IndexSpec(VERSIONS, ("workflow_id", "version"), unique=True),
    *EXECUTION_INDEXES,
]


class WorkflowInput(BaseModel):
    """The body of ``POST /v1/workflows`` and ``PUT /v1/workflows/{id}``.

    Either our shape (``mode``, ``steps``, ``timeoutSeconds``) or a stored Linqra
    workflow's ``request`` (``{"link": …, "query": {"workflow": [...]}}``).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    mode: str | None = None
    params: dict[str, Any] | None = None
    steps: list[dict[str, Any]] | None = None
    timeoutSeconds: float | None = None
    request: dict[str, Any] | None = None

    def definition_data(self) -> dict[str, Any]:
        if self.request is not None:
            if self.steps is not None:
                raise ValidationError("give either steps or request, not both", field="request")
            query = self.request.get("query")
            steps = query.get("workflow") if isinstance(query, dict) else None
            if not isinstance(steps, list):
                raise ValidationError(
                    "request.query.workflow must be a list of steps", field="request.query.workflow"
                )
            data: dict[str, Any] = {"steps": steps}
            if isinstance(query, dict) and "mode" in query:
                data["mode"] = query["mode"]
        else:
            if self.steps is None:
                raise ValidationError("steps is required", field="steps")
            data = {"steps": self.steps}
        if self.mode is not None:
            data["mode"] = self.mode
        if self.params is not None:
            data["params"] = self.params
        if self.timeoutSeconds is not None:
            data["timeoutSeconds"] = self.timeoutSeconds
        return data


class WorkflowService:
    """Workflows, versions and execution creation for any team (the team is an argument)."""

    def __init__(self, store: DocumentStore, registry: TargetRegistry) -> None:
        self.store = store
        self.registry = registry
        self.executions = ExecutionRepository(store)
        self._parsed: OrderedDict[tuple[str, str, int], WorkflowDefinition] = OrderedDict()

    async def init(self) -> None:
        """Create indexes; safe on every start-up."""
        await self.store.ensure_indexes(INDEXES)

    # -- definitions ------------------------------------------------------------
    def parse_input(self, body: Any) -> tuple[WorkflowInput, WorkflowDefinition]:
        try:
            data = WorkflowInput.model_validate(body)
        except pydantic.ValidationError as exc:
            raise format_pydantic_error(exc) from None
        return data, self.validate_definition(data.definition_data())

    def validate_definition(self, data: Any, *, prefix: str = "") -> WorkflowDefinition:
        """A definition checked against the step-target registry (``prefix`` goes before field names)."""
        return parse_definition(data, known_target=self.registry.check_step, prefix=prefix)

    # -- workflows ----------------------------------------------------------------
    async def create(self, team_id: str, body: Any, *, created_by: str | None = None) -> Workflow:
        data, definition = self.parse_input(body)
        workflow_id = new_id("wf")
        now = iso()
        version = _version_doc(workflow_id, 1, data, definition, now, created_by)
        await self.store.insert(VERSIONS, team_id, version)
        await self.store.insert(
            WORKFLOWS, team_id, {"id": workflow_id, "created_at": now, "deleted_at": None}
        )
        return _view(workflow_id, now, version)

    async def _workflow(self, team_id: str, workflow_id: str) -> Document:
        doc = await self.store.get(WORKFLOWS, team_id, workflow_id)
        if doc is None or doc.get("deleted_at"):
            raise NotFound(f"workflow {workflow_id!r} not found", field="workflow_id")
        return doc

    async def _latest(self, team_id: str, workflow_id: str) -> Document:
        found = await self.store.find(
            VERSIONS, team_id, {"workflow_id": workflow_id}, sort=[("version", -1)], limit=1
        )
        if not found:
            raise NotFound(f"workflow {workflow_id!r} not found", field="workflow_id")
        return found[0]

    async def get(self, team_id: str, workflow_id: str) -> Workflow:
        doc = await self._workflow(team_id, workflow_id)
        return _view(workflow_id, doc["created_at"], await self._latest(team_id, workflow_id))

    async def list_workflows(
        self, team_id: str, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[Workflow], int]:
        where = {"deleted_at": None}
        docs = await self.store.find(
            WORKFLOWS, team_id, where, sort=[("created_at", -1)], limit=limit, skip=offset
        )
        total = await self.store.count(WORKFLOWS, team_id, where)
        items = [
            _view(d["id"], d["created_at"], await self._latest(team_id, d["id"])) for d in docs
        ]
        return items, total

    async def update(
        self,
        team_id: str,
        workflow_id: str,
        body: Any,
        *,
        created_by: str | None = None,
        expected_version: int | None = None,
    ) -> Workflow:
        data, definition = self.parse_input(body)
        doc = await self._workflow(team_id, workflow_id)
        latest = await self._latest(team_id, workflow_id)
        if expected_version is not None and latest["version"] != expected_version:
            raise Conflict(
                f"workflow is at version {latest['version']}, not {expected_version}",
                field="If-Match",
            )
        version = _version_doc(
            workflow_id, latest["version"] + 1, data, definition, iso(), created_by
        )
        await self.store.insert(
            VERSIONS, team_id, version
        )  # a concurrent update gets Conflict here
        return _view(workflow_id, doc["created_at"], version)

    async def delete(self, team_id: str, workflow_id: str) -> None:
        await self._workflow(team_id, workflow_id)
        await self.store.update(WORKFLOWS, team_id, workflow_id, {"deleted_at": iso()})

    async def versions(
        self, team_id: str, workflow_id: str, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[WorkflowVersion], int]:
        await self._workflow(team_id, workflow_id)
        where = {"workflow_id": workflow_id}
        docs = await self.store.find(
            VERSIONS, team_id, where, sort=[("version", -1)], limit=limit, skip=offset
        )
        total = await self.store.count(VERSIONS, team_id, where)
        return [_version_view(d) for d in docs], total

    async def version(self, team_id: str, workflow_id: str, version: int) -> WorkflowVersion:
        await self._workflow(team_id, workflow_id)
        doc = await self.store.get(VERSIONS, team_id, f"{workflow_id}@{version}")
        if doc is None:
            raise NotFound(f"workflow {workflow_id!r} has no version {version}", field="version")
        return _version_view(doc)

    async def rollback(
        self, team_id: str, workflow_id: str, version: int, *, created_by: str | None = None
    ) -> Workflow:
        old = await self.version(team_id, workflow_id, version)
        doc = await self._workflow(team_id, workflow_id)
        latest = await self._latest(team_id, workflow_id)
        new = {
            "name": old.name,
            "description": old.description,
            "definition": old.definition,
            "id": f"{workflow_id}@{latest['version'] + 1}",
            "workflow_id": workflow_id,
            "version": latest["version"] + 1,
            "created_at": iso(),
            "created_by": created_by,
            "rolled_back_from": version,
        }
        await self.store.insert(VERSIONS, team_id, new)
        return _view(workflow_id, doc["created_at"], new)

    # -- executions ---------------------------------------------------------------
    async def new_execution(
        self,
        team_id: str,
        *,
        workflow_id: str | None = None,
        definition: WorkflowDefinition | None = None,
        params: dict[str, Any] | None = None,
        executed_by: str | None = None,
        intent: str | None = None,
        source: str = "api",
        depth: int = 0,
    ) -> Document:
        """Insert a PENDING execution of a stored workflow (its current version) or an inline definition."""
        version = None
        name = None
        if workflow_id is not None:
            await self._workflow(team_id, workflow_id)
            latest = await self._latest(team_id, workflow_id)
            version, name = latest["version"], latest["name"]
            definition = self._parsed_version(team_id, workflow_id, version, latest["definition"])
        if definition is None:
            raise ValidationError("a workflow id or inline steps are required", field="workflow")
        return await self.executions.create(
            team_id,
            {
                "id": new_id("ex"),
                "workflow_id": workflow_id,
                "workflow_version": version,
                "workflow_name": name,
                "mode": definition.mode,
                "definition": definition.to_json(),
                "params": {**definition.params, **(params or {})},
                "executed_by": executed_by,
                "intent": intent,
                "source": source,
                "depth": depth,
                **_trace_fields(),
            },
        )

    PARSED_CACHE_SIZE = 512
    """Parsed definitions kept per (team, workflow, version): versions never change."""

    def _parsed_version(
        self, team_id: str, workflow_id: str, version: int, body: dict[str, Any]
    ) -> WorkflowDefinition:
        key = (team_id, workflow_id, version)
        definition = self._parsed.get(key)
        if definition is None:
            definition = WorkflowDefinition.model_validate(body)
            self._parsed[key] = definition
            if len(self._parsed) > self.PARSED_CACHE_SIZE:
                self._parsed.popitem(last=False)
        else:
            self._parsed.move_to_end(key)
        return definition


def _version_doc(
    workflow_id: str,
    version: int,
    data: WorkflowInput,
    definition: WorkflowDefinition,
    now: str,
    created_by: str | None,
) -> Document:
    return {
        "id": f"{workflow_id}@{version}",
        "workflow_id": workflow_id,
        "version": version,
        "name": data.name,
        "description": data.description,
        "definition": definition.to_json(),
        "created_at": now,
        "created_by": created_by,
    }


def _view(workflow_id: str, created_at: str, version: Document) -> Workflow:
    return Workflow.model_validate(
        {
            "id": workflow_id,
            "name": version["name"],
            "description": version.get("description"),
            "version": version["version"],
            "created_at": created_at,
            "updated_at": version["created_at"],
            **version["definition"],
        }
    )


def _version_view(doc: Document) -> WorkflowVersion:
    return WorkflowVersion.model_validate(
        {k: v for k, v in doc.items() if k not in ("id", "team_id")}
    )


def _trace_fields() -> dict[str, Any]:
    """The span that creates an execution (the request's), for the runner's spans to follow it
    and for the record to name its trace (nothing while tracing is off); the request's id, for
    the runner's log lines to name it too."""
    fields: dict[str, Any] = {}
    request_id = bound_fields().get("request_id")
    if request_id:
        fields["request_id"] = request_id
    parent = traceparent()
    if parent is not None:
        fields["traceparent"] = parent  # an unsampled one too: the runner keeps that choice
        recorded = trace_id(parent)
        if recorded is not None:
            fields["trace_id"] = recorded
    return fields
