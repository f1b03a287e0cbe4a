"""The API gateway: a Ray Serve deployment with a FastAPI ingress.

Team context comes from the ``X-Team-Id`` header (required, validated; no
default team) until authentication lands; it is built once per request as a
:class:`linqra.tenancy.TeamContext`, so only its source will change.
Executions run in the ``linqra-runner`` actor; the gateway creates the record,
hands it over, and (``?wait=true``, ``POST /linq``) waits for the result.
"""

# no "from __future__ import annotations": FastAPI reads these annotations at runtime through Serve

import asyncio
import hashlib
import json
import logging
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, Header, Path, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.exceptions import RayActorError
from starlette.requests import Request

from deployments.agents_api import (
    AdhocRequest,
    ExecuteTaskRequest,
    HookRequest,
    PublishRequest,
    wait_task_execution,
)
from deployments.errors import install_error_handlers
from deployments.knowledge_api import SearchRequest, upload_document
from deployments.limits import RequestLimits
from deployments.openai_api import (
    ChatRequest,
    chat_completion,
    list_models,
    set_price,
    usage_summary,
)
from linqra import __version__
from linqra.config import Settings
from linqra.errors import Conflict, ValidationError
from linqra.linq import inline_definition, linq_response, parse_linq
from linqra.scheduling.cron import cron_preview
from linqra.scheduling.triggers import HookService, publish_team_event
from linqra.system import System
from linqra.tenancy import TeamContext, validate_team_id
from linqra.workflows.records import TERMINAL

log = logging.getLogger(__name__)

DESCRIPTION = """
Linqra on Ray: multi-step AI workflows for many teams, on a Ray cluster.

Every `/v1` call and `/linq` needs an **`X-Team-Id`** header naming your team.
Errors are `{"error": {"code", "message", "field"?}}` with a 4xx status for bad input.
Request bodies are limited to 1 MiB and 32 levels of JSON nesting by default.
"""

app = FastAPI(title="Linqra on Ray", version=__version__, description=DESCRIPTION)
install_error_handlers(app)
app.add_middleware(RequestLimits, max_body_bytes=1024 * 1024, max_json_depth=32)

STATUSES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")


def team_context(
    x_team_id: Annotated[
        str | None, Header(alias="X-Team-Id", description="your team's id")
    ] = None,
) -> TeamContext:
    return TeamContext(validate_team_id(x_team_id), source="header")


Team = Annotated[TeamContext, Depends(team_context)]
Limit = Annotated[int, Query(ge=1, le=100, description="page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="items to skip")]
WorkflowId = Annotated[str, Path(min_length=1, max_length=128)]
ResourceId = Annotated[str, Path(min_length=1, max_length=128)]
ModelId = Annotated[str, Path(min_length=3, max_length=200, pattern=r"^[\w.-]+:[\w.:/-]+$")]
JsonObject = Annotated[dict[str, Any], Body()]


class BudgetRequest(BaseModel):
    """A team's LLM spending limit per period, in the catalogue's currency (decimal text)."""

    model_config = ConfigDict(extra="forbid")
    amount: str = Field(min_length=1, max_length=32, examples=["25.00"])
    period: Literal["day", "month"] = "month"


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(default_factory=dict)
    executedBy: str | None = Field(default=None, max_length=256)


def page(items: list[dict[str, Any]], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if offset + limit < total else None,
    }


@serve.deployment(
    name="Gateway",
    ray_actor_options={"num_cpus": 0},
    max_ongoing_requests=256,
    autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 64},
    # the replica's own access lines would flood the `linqra up` terminal (one per request)
    logging_config={"enable_access_log": False, "log_level": "WARNING"},
)
@serve.ingress(app)
class Gateway:
    def __init__(self, settings_json: str) -> None:
        from actors.runner import get_runner

        self.settings = Settings.model_validate_json(settings_json)
        app.state.limits = (
            self.settings.http.max_body_bytes,
            self.settings.http.max_json_depth,
            self.settings.knowledge.max_upload_bytes + 64 * 1024,  # multipart envelope
        )
        self.runner = get_runner(self.settings)
        from actors.scheduler import get_scheduler

        self.scheduler = get_scheduler(self.settings)
        self._system: System | None = None
        self._event_bus: Any = None
        self._lock = asyncio.Lock()

    async def sys(self) -> System:
        if self._system is None:
            async with self._lock:
                if self._system is None:
                    self._system = await System.open(self.settings)
        return self._system

    # -- health -------------------------------------------------------------------
    @app.get("/healthz", tags=["health"])
    async def healthz(self) -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            await (await self.sys()).store.count("workflows", "_health")
            checks["store"] = "ok"
        except Exception as exc:
            checks["store"] = f"error: {type(exc).__name__}"
        try:
            await asyncio.wait_for(self.runner.ping.remote(), timeout=5)
            checks["runner"] = "ok"
        except Exception as exc:
            checks["runner"] = f"error: {type(exc).__name__}"
        healthy = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ok" if healthy else "degraded", "version": __version__, "checks": checks},
            status_code=200 if healthy else 503,
        )

    # -- workflows ----------------------------------------------------------------
    @app.post("/v1/workflows", status_code=201, tags=["workflows"])
    async def create_workflow(self, team: Team, body: JsonObject) -> dict[str, Any]:
        return await (await self.sys()).service.create(team.team_id, body, created_by=team.user_id)

    @app.get("/v1/workflows", tags=["workflows"])
    async def list_workflows(
        self, team: Team, limit: Limit = 50, offset: Offset = 0
    ) -> dict[str, Any]:
        items, total = await (await self.sys()).service.list_workflows(
            team.team_id, limit=limit, offset=offset
        )
        return page(items, total, limit, offset)

    @app.get("/v1/workflows/{workflow_id}", tags=["workflows"])
    async def get_workflow(self, team: Team, workflow_id: WorkflowId) -> dict[str, Any]:
        return await (await self.sys()).service.get(team.team_id, workflow_id)

    @app.put("/v1/workflows/{workflow_id}", tags=["workflows"])
    async def update_workflow(
        self,
        team: Team,
        workflow_id: WorkflowId,
        body: JsonObject,
        if_match: Annotated[
            str | None, Header(alias="If-Match", description="expected current version")
        ] = None,
    ) -> dict[str, Any]:
        expected = None
        if if_match is not None:
            if not if_match.strip('"').isdigit():
                raise ValidationError("If-Match must be a version number", field="If-Match")
            expected = int(if_match.strip('"'))
        return await (await self.sys()).service.update(
            team.team_id, workflow_id, body, created_by=team.user_id, expected_version=expected
        )

    @app.delete("/v1/workflows/{workflow_id}", status_code=204, tags=["workflows"])
    async def delete_workflow(self, team: Team, workflow_id: WorkflowId) -> Response:
        await (await self.sys()).service.delete(team.team_id, workflow_id)
        return Response(status_code=204)

    @app.get("/v1/workflows/{workflow_id}/versions", tags=["workflows"])
    async def list_versions(
        self, team: Team, workflow_id: WorkflowId, limit: Limit = 50, offset: Offset = 0
    ) -> dict[str, Any]:
        items, total = await (await self.sys()).service.versions(
            team.team_id, workflow_id, limit=limit, offset=offset
        )
        return page(items, total, limit, offset)

    @app.get("/v1/workflows/{workflow_id}/versions/{version}", tags=["workflows"])
    async def get_version(
        self, team: Team, workflow_id: WorkflowId, version: Annotated[int, Path(ge=1)]
    ) -> dict[str, Any]:
        return await (await self.sys()).service.version(team.team_id, workflow_id, version)

    @app.post(
        "/v1/workflows/{workflow_id}/versions/{version}/rollback",
        status_code=201,
        tags=["workflows"],
    )
    async def rollback(
        self, team: Team, workflow_id: WorkflowId, version: Annotated[int, Path(ge=1)]
    ) -> dict[str, Any]:
        return await (await self.sys()).service.rollback(
            team.team_id, workflow_id, version, created_by=team.user_id
        )

    @app.post("/v1/workflows/{workflow_id}/execute", tags=["executions"])
    async def execute(
        self,
        team: Team,
        workflow_id: WorkflowId,
        body: Annotated[ExecuteRequest | None, Body()] = None,
        wait: Annotated[bool, Query(description="wait for the finished record")] = False,
    ) -> JSONResponse:
        request = body or ExecuteRequest()
        execution = await (await self.sys()).service.new_execution(
            team.team_id,
            workflow_id=workflow_id,
            params=request.params,
            executed_by=request.executedBy or team.user_id,
        )
        return await self._start(team, execution["id"], wait)

    async def _start(self, team: TeamContext, execution_id: str, wait: bool) -> JSONResponse:
        try:
            await self.runner.submit.remote(team.team_id, execution_id)
        except RayActorError:
            # The record stays PENDING; the restarted runner's reaper adopts it.
            log.warning(
                "runner unavailable; execution %s left PENDING for the reaper", execution_id
            )
        return await self._answer(team, execution_id, wait)

    async def _answer(self, team: TeamContext, execution_id: str, wait: bool) -> JSONResponse:
        """202 with a link, or (``wait``) the record once terminal: 200, else 202 with it as it is."""
        if not wait:
            link = {"self": f"/v1/executions/{execution_id}"}
            return JSONResponse(
                {"id": execution_id, "status": "RUNNING", "links": link}, status_code=202
            )
        record = await self._wait(team, execution_id)
        return JSONResponse(record, status_code=200 if record["status"] in TERMINAL else 202)

    async def _wait(self, team: TeamContext, execution_id: str) -> dict[str, Any]:
        timeout = self.settings.http.wait_timeout_seconds
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            record: dict[str, Any] = await self.runner.wait.remote(
                team.team_id, execution_id, timeout
            )
            return record
        except RayActorError:  # the runner restarted while we waited: read the store instead
            log.warning("runner restarted while waiting for %s; polling the store", execution_id)
        executions = (await self.sys()).service.executions
        while loop.time() < deadline:
            if (await executions.get(team.team_id, execution_id))["status"] in TERMINAL:
                break
            await asyncio.sleep(0.2)
        return await executions.full_record(team.team_id, execution_id)

    # -- executions ---------------------------------------------------------------
    @app.get("/v1/executions", tags=["executions"])
    async def list_executions(
        self,
        team: Team,
        limit: Limit = 50,
        offset: Offset = 0,
        workflow_id: Annotated[str | None, Query(max_length=128)] = None,
        status: Annotated[Literal[STATUSES] | None, Query()] = None,  # type: ignore[valid-type]
    ) -> dict[str, Any]:
        items, total = await (await self.sys()).service.executions.page(
            team.team_id, workflow_id=workflow_id, status=status, limit=limit, offset=offset
        )
        for item in items:
            item.pop("definition", None)
        return page(items, total, limit, offset)

    @app.get("/v1/executions/{execution_id}", tags=["executions"])
    async def get_execution(
        self,
        team: Team,
        execution_id: WorkflowId,
        history: Annotated[bool, Query(description="every run of every step")] = False,
    ) -> dict[str, Any]:
        return await (await self.sys()).service.executions.full_record(
            team.team_id, execution_id, history=history
        )

    @app.post("/v1/executions/{execution_id}/cancel", tags=["executions"])
    async def cancel(self, team: Team, execution_id: WorkflowId) -> dict[str, Any]:
        await (await self.sys()).service.executions.get(team.team_id, execution_id)
        await self.runner.cancel.remote(team.team_id, execution_id)
        return await (await self.sys()).service.executions.full_record(team.team_id, execution_id)

    @app.post("/v1/executions/{execution_id}/resume", status_code=202, tags=["executions"])
    async def resume(
        self, team: Team, execution_id: WorkflowId, wait: Annotated[bool, Query()] = False
    ) -> JSONResponse:
        await (await self.sys()).service.executions.get(team.team_id, execution_id)
        await self.runner.resume.remote(team.team_id, execution_id)
        return await self._answer(team, execution_id, wait)

    # -- LLMs: OpenAI-compatible ----------------------------------------------------------
    @app.post("/v1/chat/completions", tags=["llm"])
    async def chat_completions(self, team: Team, body: ChatRequest) -> Any:
        return await chat_completion((await self.sys()).llm, team.team_id, body)

    @app.get("/v1/models", tags=["llm"])
    async def models(self, team: Team) -> dict[str, Any]:
        return await list_models((await self.sys()).llm, team.team_id)

    @app.put("/v1/models/{model_id}/price", tags=["llm"])
    async def put_price(self, team: Team, model_id: ModelId, body: JsonObject) -> Any:
        """Set the team's own rates for a model (per million tokens, decimal text)."""
        return await set_price((await self.sys()).llm, team.team_id, model_id, body)

    @app.delete("/v1/models/{model_id}/price", status_code=204, tags=["llm"])
    async def delete_price(self, team: Team, model_id: ModelId) -> Response:
        await (await self.sys()).llm.overrides.delete(team.team_id, model_id)
        return Response(status_code=204)

    @app.get("/v1/usage", tags=["llm"])
    async def usage(
        self,
        team: Team,
        group_by: Annotated[Literal["model", "provider", "day"], Query()] = "model",
        start: Annotated[
            str | None, Query(alias="from", description="ISO date or time, inclusive")
        ] = None,
        end: Annotated[
            str | None, Query(alias="to", description="ISO date or time, exclusive")
        ] = None,
    ) -> dict[str, Any]:
        return await usage_summary((await self.sys()).llm, team.team_id, group_by, start, end)

    @app.get("/v1/budget", tags=["llm"])
    async def get_budget(self, team: Team) -> dict[str, Any]:
        return await (await self.sys()).llm.budgets.status(team.team_id)

    @app.put("/v1/budget", tags=["llm"])
    async def put_budget(self, team: Team, body: BudgetRequest) -> dict[str, Any]:
        return await (await self.sys()).llm.budgets.set(team.team_id, body.amount, body.period)

    @app.delete("/v1/budget", status_code=204, tags=["llm"])
    async def delete_budget(self, team: Team) -> Response:
        await (await self.sys()).llm.budgets.clear(team.team_id)
        return Response(status_code=204)

    # -- Knowledge Hub -------------------------------------------------------------------
    async def _start_ingest(self, team_id: str, doc_id: str) -> None:
        try:
            await self.runner.ingest.remote(team_id, doc_id)
        except RayActorError:  # the runner's document reaper picks it up when it is back
            log.warning("runner unavailable; document %s left PENDING for the reaper", doc_id)

    @app.post("/v1/knowledge/collections", status_code=201, tags=["knowledge"])
    async def create_collection(self, team: Team, body: JsonObject) -> dict[str, Any]:
        """A collection: ``{name, description?, embedder?, dimension?, metadata_fields?,
        chunk_tokens?, chunk_overlap?}``; ``metadata_fields`` maps names to string/int/float/bool
        and makes them filterable."""
        return await (await self.sys()).knowledge.create_collection(team.team_id, body)

    @app.get("/v1/knowledge/collections", tags=["knowledge"])
    async def list_collections(
        self, team: Team, limit: Limit = 50, offset: Offset = 0
    ) -> dict[str, Any]:
        items, total = await (await self.sys()).knowledge.list_collections(
            team.team_id, limit=limit, offset=offset
        )
        return page(items, total, limit, offset)

    @app.get("/v1/knowledge/collections/{collection_id}", tags=["knowledge"])
    async def get_collection(self, team: Team, collection_id: ResourceId) -> dict[str, Any]:
        knowledge = (await self.sys()).knowledge
        collection = await knowledge.get_collection(team.team_id, collection_id)
        return await knowledge.collection_stats(team.team_id, collection)

    @app.delete("/v1/knowledge/collections/{collection_id}", status_code=204, tags=["knowledge"])
    async def delete_collection(self, team: Team, collection_id: ResourceId) -> Response:
        await (await self.sys()).knowledge.delete_collection(team.team_id, collection_id)
        return Response(status_code=204)

    @app.post(
        "/v1/knowledge/collections/{collection_id}/documents", status_code=202, tags=["knowledge"]
    )
    async def add_document(
        self, team: Team, collection_id: ResourceId, request: Request
    ) -> JSONResponse:
        """Upload a file (``multipart/form-data``: ``file``, optional ``title`` and ``metadata``
        as JSON text) or raw text (JSON ``{title, text, file_name?, mime_type?, metadata?}``).
        202 and the PENDING document; watch ``GET …/documents/{id}`` for progress. The same
        bytes again answer 200 with the existing document."""
        knowledge = (await self.sys()).knowledge
        doc, created = await upload_document(knowledge, team.team_id, collection_id, request)
        if created:
            await self._start_ingest(team.team_id, doc["id"])
        return JSONResponse({**doc, "duplicate": not created}, status_code=202 if created else 200)

    @app.get("/v1/knowledge/collections/{collection_id}/documents", tags=["knowledge"])
    async def list_documents(
        self,
        team: Team,
        collection_id: ResourceId,
        status: Annotated[
            Literal["PENDING", "PROCESSING", "READY", "FAILED"] | None, Query()
        ] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        items, total = await (await self.sys()).knowledge.list_documents(
            team.team_id, collection_id, status=status, limit=limit, offset=offset
        )
        return page(items, total, limit, offset)

    @app.get("/v1/knowledge/collections/{collection_id}/documents/{doc_id}", tags=["knowledge"])
    async def get_document(
        self,
        team: Team,
        collection_id: ResourceId,
        doc_id: ResourceId,
        chunks: Annotated[bool, Query(description="include the chunks' text")] = False,
    ) -> dict[str, Any]:
        return await (await self.sys()).knowledge.get_document(
            team.team_id, collection_id, doc_id, chunks=chunks
        )

    @app.delete(
        "/v1/knowledge/collections/{collection_id}/documents/{doc_id}",
        status_code=204,
        tags=["knowledge"],
    )
    async def delete_document(
        self, team: Team, collection_id: ResourceId, doc_id: ResourceId
    ) -> Response:
        await (await self.sys()).knowledge.delete_document(team.team_id, collection_id, doc_id)
        return Response(status_code=204)

    @app.post(
        "/v1/knowledge/collections/{collection_id}/documents/{doc_id}/reindex",
        status_code=202,
        tags=["knowledge"],
    )
    async def reindex_document(
        self, team: Team, collection_id: ResourceId, doc_id: ResourceId
    ) -> dict[str, Any]:
        doc = await (await self.sys()).knowledge.mark_for_reindex(
            team.team_id, collection_id, doc_id
        )
        await self._start_ingest(team.team_id, doc_id)
        return doc

    @app.post("/v1/knowledge/collections/{collection_id}/search", tags=["knowledge"])
    async def search(
        self, team: Team, collection_id: ResourceId, body: SearchRequest
    ) -> dict[str, Any]:
        """Chunks as citations ``{document_id, title, file_name, page_numbers, rank, score,
        text}``, best first; ``filter`` is an expression or a JSON object over the collection's
        fields."""
        results = await (await self.sys()).knowledge.search(
            team.team_id,
            collection_id,
            query=body.query,
            vector=body.vector,
            top_k=body.top_k,
            filter=body.filter,
            min_score=body.min_score,
            embedder=body.embedder,
            caller={"type": "api", "endpoint": "knowledge.search"},
        )
        return {"collection": collection_id, "results": results}

    @app.post("/api/milvus/collections/{name}/search", tags=["linq"])
    async def linq_milvus_search(self, team: Team, name: ResourceId, body: JsonObject) -> Any:
        """Linqra's Milvus search intent: ``{text|query, topK|nResults, filter?}`` →
        ``{results}``."""
        text = body.get("text", body.get("query", body.get("textField")))
        top_k: Any = body.get("topK", body.get("nResults", body.get("top_k", 5)))
        results = await (await self.sys()).knowledge.search(
            team.team_id,
            name,
            query=text,
            top_k=top_k,
            filter=body.get("filter"),
            caller={"type": "api", "endpoint": "milvus.search"},
        )
        return {"collection": name, "results": results}

    # -- agents and tasks ---------------------------------------------------------------
    async def _dispatch(self, team_id: str, tx: dict[str, Any]) -> None:
        from actors.agent import dispatch

        if tx["agent_id"] is None:
            await self.runner.run_task.remote(team_id, tx["id"])
        else:
            await dispatch(self.settings, team_id, tx["agent_id"], tx["id"], tx["priority"])

    async def _task_answer(self, team: TeamContext, tx: dict[str, Any], wait: bool) -> JSONResponse:
        agents = (await self.sys()).agents
        if wait:
            tx = await wait_task_execution(
                agents, team.team_id, tx["id"], self.settings.http.wait_timeout_seconds
            )
        done = tx["status"] in ("COMPLETED", "FAILED", "CANCELLED")
        return JSONResponse(tx, status_code=200 if done else 202)

    @app.post("/v1/agents", status_code=201, tags=["agents"])
    async def create_agent(self, team: Team, body: JsonObject) -> dict[str, Any]:
        """``{name, description?, enabled?, max_concurrency?}``."""
        return await (await self.sys()).agents.create_agent(team.team_id, body)

    @app.get("/v1/agents", tags=["agents"])
    async def list_agents(
        self, team: Team, limit: Limit = 50, offset: Offset = 0
    ) -> dict[str, Any]:
        items, total = await (await self.sys()).agents.list_agents(
            team.team_id, limit=limit, offset=offset
        )
        return page(items, total, limit, offset)

    @app.get("/v1/agents/{agent_id}", tags=["agents"])
    async def get_agent(self, team: Team, agent_id: ResourceId) -> dict[str, Any]:
        return await (await self.sys()).agents.get_agent(team.team_id, agent_id)

    @app.put("/v1/agents/{agent_id}", tags=["agents"])
    async def update_agent(
        self, team: Team, agent_id: ResourceId, body: JsonObject
    ) -> dict[str, Any]:
        return await (await self.sys()).agents.update_agent(team.team_id, agent_id, body)

    @app.delete("/v1/agents/{agent_id}", status_code=204, tags=["agents"])
    async def delete_agent(self, team: Team, agent_id: ResourceId) -> Response:
        await (await self.sys()).agents.delete_agent(team.team_id, agent_id)
        return Response(status_code=204)

    @app.post("/v1/agents/{agent_id}/tasks", status_code=201, tags=["agents"])
    async def create_task(
        self, team: Team, agent_id: ResourceId, body: JsonObject
    ) -> dict[str, Any]:
        """``{name, type, config, priority?, max_retries?, backoff_seconds?, timeout_seconds?,
        enabled?, triggers?}`` — see docs/agents.md for each type's config."""
        return await (await self.sys()).agents.create_task(
            team.team_id, agent_id, body, created_by=team.user_id
        )

    @app.get("/v1/agents/{agent_id}/tasks", tags=["agents"])
    async def list_tasks(
        self, team: Team, agent_id: ResourceId, limit: Limit = 50, offset: Offset = 0
    ) -> dict[str, Any]:
        items, total = await (await self.sys()).agents.list_tasks(
            team.team_id, agent_id, limit=limit, offset=offset
        )
        return page(items, total, limit, offset)

    @app.get("/v1/agents/{agent_id}/executions", tags=["agents"])
    async def agent_executions(
        self, team: Team, agent_id: ResourceId, limit: Limit = 50, offset: Offset = 0
    ) -> dict[str, Any]:
        agents = (await self.sys()).agents
        await agents.get_agent(team.team_id, agent_id)
        items, total = await agents.list_task_executions(
            team.team_id, agent_id=agent_id, limit=limit, offset=offset
        )
        return page(items, total, limit, offset)

    @app.post("/v1/tasks/execute-adhoc", tags=["agents"])
    async def execute_adhoc(
        self, team: Team, body: AdhocRequest, wait: Annotated[bool, Query()] = False
    ) -> JSONResponse:
        agents = (await self.sys()).agents
        task = body.task()
        await agents.compile(team.team_id, task["type"], task["config"])
        tx, _ = await agents.new_task_execution(
            team.team_id, task, input=body.input, trigger={"type": "MANUAL", "adhoc": True}
        )
        await self._dispatch(team.team_id, tx)
        return await self._task_answer(team, tx, wait)

    @app.get("/v1/tasks/{task_id}", tags=["agents"])
    async def get_task(self, team: Team, task_id: ResourceId) -> dict[str, Any]:
        agents = (await self.sys()).agents
        await agents.get_task(team.team_id, task_id)
        return await agents.sync_schedules(team.team_id, task_id)

    @app.put("/v1/tasks/{task_id}", tags=["agents"])
    async def update_task(
        self, team: Team, task_id: ResourceId, body: JsonObject
    ) -> dict[str, Any]:
        return await (await self.sys()).agents.update_task(
            team.team_id, task_id, body, created_by=team.user_id
        )

    @app.delete("/v1/tasks/{task_id}", status_code=204, tags=["agents"])
    async def delete_task(self, team: Team, task_id: ResourceId) -> Response:
        await (await self.sys()).agents.delete_task(team.team_id, task_id)
        return Response(status_code=204)

    @app.get("/v1/tasks/{task_id}/versions", tags=["agents"])
    async def task_versions(self, team: Team, task_id: ResourceId) -> dict[str, Any]:
        items = await (await self.sys()).agents.task_versions(team.team_id, task_id)
        return {"items": items, "total": len(items)}

    @app.post("/v1/tasks/{task_id}/versions/{version}/rollback", status_code=201, tags=["agents"])
    async def rollback_task(
        self, team: Team, task_id: ResourceId, version: Annotated[int, Path(ge=1)]
    ) -> dict[str, Any]:
        return await (await self.sys()).agents.rollback_task(team.team_id, task_id, version)

    @app.post("/v1/tasks/{task_id}/execute", tags=["agents"])
    async def execute_task(
        self,
        team: Team,
        task_id: ResourceId,
        body: ExecuteTaskRequest | None = None,
        wait: Annotated[bool, Query()] = False,
    ) -> JSONResponse:
        """Run a task now (a MANUAL trigger): 202 and the PENDING task execution, or with
        ``wait=true`` its end. An ``idempotency_key`` seen before returns the first execution."""
        agents = (await self.sys()).agents
        body = body or ExecuteTaskRequest()
        task = await agents.get_task(team.team_id, task_id)
        if not task["enabled"]:
            raise Conflict("the task is disabled", field="task_id")
        key = f"manual:{task_id}:{body.idempotency_key}" if body.idempotency_key else None
        tx, created = await agents.new_task_execution(
            team.team_id,
            task,
            input=body.input,
            trigger={"type": "MANUAL", "user": team.user_id},
            idempotency_key=key,
        )
        if created:
            await self._dispatch(team.team_id, tx)
        return await self._task_answer(team, tx, wait)

    @app.post("/v1/tasks/{task_id}/{switch}", tags=["agents"])
    async def switch_task(
        self,
        team: Team,
        task_id: ResourceId,
        switch: Literal["enable", "disable", "pause", "resume"],
    ) -> dict[str, Any]:
        """``enable``/``disable`` the task; ``pause``/``resume`` its schedules (resuming starts
        from now: a paused period is not caught up)."""
        agents = (await self.sys()).agents
        if switch in ("enable", "disable"):
            return await agents.set_enabled(team.team_id, task_id, enabled=switch == "enable")
        return await agents.set_enabled(team.team_id, task_id, paused=switch == "pause")

    @app.get("/v1/task-executions", tags=["agents"])
    async def list_task_executions(
        self,
        team: Team,
        agent_id: Annotated[str | None, Query(max_length=128)] = None,
        task_id: Annotated[str | None, Query(max_length=128)] = None,
        status: Annotated[
            Literal["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"] | None, Query()
        ] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        items, total = await (await self.sys()).agents.list_task_executions(
            team.team_id,
            agent_id=agent_id,
            task_id=task_id,
            status=status,
            limit=limit,
            offset=offset,
        )
        return page(items, total, limit, offset)

    @app.get("/v1/task-executions/{tx_id}", tags=["agents"])
    async def get_task_execution(self, team: Team, tx_id: ResourceId) -> dict[str, Any]:
        return await (await self.sys()).agents.get_task_execution(team.team_id, tx_id)

    @app.post("/v1/task-executions/{tx_id}/cancel", tags=["agents"])
    async def cancel_task_execution(self, team: Team, tx_id: ResourceId) -> dict[str, Any]:
        """Cancel: a PENDING one at once, a RUNNING one stops its workflow execution (the agent
        sees the request within a second)."""
        return await (await self.sys()).agents.request_cancel(team.team_id, tx_id)

    # -- events and webhooks -------------------------------------------------------------
    def _bus(self) -> Any:
        if self._event_bus is None:
            from actors.events import open_bus

            self._event_bus = open_bus(self.settings)
        return self._event_bus

    @app.post("/v1/events", status_code=202, tags=["events"])
    async def publish_event(self, team: Team, body: PublishRequest) -> dict[str, Any]:
        """Publish ``payload`` on the team's ``topic``; EVENT_DRIVEN triggers on it start tasks."""
        event = await publish_team_event(
            self._bus(),
            team.team_id,
            body.topic,
            body.payload,
            idempotency_key=body.idempotency_key,
        )
        return {"id": event.id, "topic": body.topic, "published_at": event.published_at}

    @app.post("/v1/hooks", status_code=201, tags=["events"])
    async def create_hook(self, team: Team, body: HookRequest) -> dict[str, Any]:
        """A webhook publishing to ``topic``; the answer holds the signing ``secret`` (only here)."""
        hook = await HookService((await self.sys()).store).create(
            team.team_id, body.topic, body.description
        )
        return {**hook, "url": f"/v1/hooks/{hook['id']}"}

    @app.get("/v1/hooks", tags=["events"])
    async def list_hooks(self, team: Team) -> dict[str, Any]:
        items = await HookService((await self.sys()).store).list(team.team_id)
        return {"items": items, "total": len(items)}

    @app.delete("/v1/hooks/{hook_id}", status_code=204, tags=["events"])
    async def delete_hook(self, team: Team, hook_id: ResourceId) -> Response:
        await HookService((await self.sys()).store).delete(team.team_id, hook_id)
        return Response(status_code=204)

    @app.post("/v1/hooks/{hook_id}", status_code=202, tags=["events"])
    async def call_hook(
        self,
        hook_id: ResourceId,
        request: Request,
        signature: Annotated[str | None, Header(alias="X-Linqra-Signature")] = None,
        idempotency_key: Annotated[
            str | None, Header(alias="X-Idempotency-Key", max_length=200)
        ] = None,
    ) -> dict[str, Any]:
        """Called by another system (no team header: the hook knows its team). The raw body must
        be signed: ``X-Linqra-Signature: sha256=<hex HMAC-SHA256(secret, body)>``."""
        body = await request.body()
        team_id, hook = await HookService((await self.sys()).store).verify(hook_id, body, signature)
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            raise ValidationError("the webhook body is not JSON", field="body") from None
        key = idempotency_key or hashlib.sha256(body).hexdigest()
        event = await publish_team_event(
            self._bus(),
            team_id,
            hook["topic"],
            payload,
            idempotency_key=f"hook:{hook_id}:{key}",
            source="webhook",
        )
        return {"id": event.id, "topic": hook["topic"]}

    # -- scheduling ---------------------------------------------------------------------
    @app.get("/v1/cron/next", tags=["scheduling"])
    async def cron_next(
        self,
        team: Team,
        expression: Annotated[str, Query(max_length=256, description="Quartz cron, 6 or 7 fields")],
        timezone: Annotated[str, Query(max_length=64)] = "UTC",
        after: Annotated[str | None, Query(description="ISO-8601 instant; default now")] = None,
        count: Annotated[int, Query(ge=1, le=100)] = 5,
    ) -> dict[str, Any]:
        """The next fire times of a Quartz cron expression in a time zone, as UTC instants."""
        return cron_preview(expression, timezone, after, count)

    # -- Linqra's entry point -----------------------------------------------------------
    @app.post("/linq", tags=["linq"])
    async def linq(self, team: Team, body: JsonObject) -> JSONResponse:
        request = parse_linq(body)
        system = await self.sys()
        definition = None
        if request.query.workflow is not None:
            definition = system.service.validate_definition(
                inline_definition(request), prefix="query.workflow."
            )
        execution = await system.service.new_execution(
            team.team_id,
            workflow_id=request.query.workflowId,
            definition=definition,
            params=request.query.params,
            executed_by=request.executedBy,
            intent=request.query.intent,
            source="linq",
        )
        try:
            await self.runner.submit.remote(team.team_id, execution["id"])
        except RayActorError:
            log.warning(
                "runner unavailable; execution %s left PENDING for the reaper", execution["id"]
            )
        record = await self._wait(team, execution["id"])
        return JSONResponse(
            linq_response(record), status_code=200 if record["status"] in TERMINAL else 202
        )


def build_app(settings: Settings) -> Any:
    """The Serve application: the gateway, autoscaled per the settings."""
    http = settings.http
    return Gateway.options(  # type: ignore[attr-defined]
        autoscaling_config={
            "min_replicas": http.gateway_replicas_min,
            "max_replicas": http.gateway_replicas_max,
            "target_ongoing_requests": 64,
        },
    ).bind(settings.portable().model_dump_json())


def app_builder(args: dict[str, Any]) -> Any:
    """Entry point for ``serve run`` / ``serve deploy`` with ``configs/serve.yaml``.

    ``args`` may hold ``config`` (a Linqra YAML file); everything else comes from
    ``LINQRA_*`` variables as usual.
    """
    import os

    from linqra.config import load_settings

    if args.get("config"):
        os.environ["LINQRA_CONFIG"] = str(args["config"])
    return build_app(load_settings())
