"""The LLM layer: OpenAI-compatible ``/v1/chat/completions`` and ``/v1/models``, the team's
prices, usage and budget. Any OpenAI SDK works when pointed at ``http://HOST:8000/v1`` with the
``X-Team-Id`` header (``default_headers``); every call is accounted to that team. The request
checks and the response shapes are :mod:`deployments.openai_api`."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from deployments.auth import Require, Runner, Viewer
from deployments.deps import JsonObject, ModelId, SystemDep
from deployments.openai_api import (
    ASSISTANT_MODEL,
    CONVERSATION_HEADER,
    ChatRequest,
    assistant_completion,
    chat_completion,
    list_models,
    set_price,
    usage_summary,
)
from deployments.schemas import RecordRoute, body_schema
from linqra.auth.principal import Permission, Principal
from linqra.llm.models import (
    BudgetStatus,
    ChatCompletion,
    ModelList,
    PriceInput,
    PriceOverride,
    UsageSummary,
)

__all__ = ["BudgetRequest", "router"]

SetPrice = Annotated[Principal, Depends(Require(Permission.ADMIN, "price.set"))]
DeletePrice = Annotated[Principal, Depends(Require(Permission.ADMIN, "price.delete"))]
SetBudget = Annotated[Principal, Depends(Require(Permission.ADMIN, "budget.set"))]
DeleteBudget = Annotated[Principal, Depends(Require(Permission.ADMIN, "budget.delete"))]

router = APIRouter(tags=["llm"], route_class=RecordRoute)


class BudgetRequest(BaseModel):
    """A team's LLM spending limit per period, in the catalogue's currency (decimal text)."""

    model_config = ConfigDict(extra="forbid")
    amount: str = Field(min_length=1, max_length=32, examples=["25.00"])
    period: Literal["day", "month"] = "month"

    @field_validator("amount", mode="before")
    @classmethod
    def _decimal_text(cls, value: Any) -> Any:
        """A whole JSON number is exact and taken as it is; any other non-text is refused with
        the form to use (a JSON number with a fraction is a binary float: cents may change)."""
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise ValueError('amount must be decimal text, e.g. "25.00"')
        return value


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "the completion, or with `stream: true` OpenAI's chunks as "
            "server-sent events ending with `data: [DONE]`",
        }
    },
)
async def chat_completions(
    system: SystemDep,
    team: Runner,
    body: ChatRequest,
    conversation_id: Annotated[
        str | None,
        Header(
            alias=CONVERSATION_HEADER,
            max_length=100,
            description='with model "assistant:<id>": the conversation to continue',
        ),
    ] = None,
) -> Any:
    """A model's completion, or with ``model: "assistant:<id>"`` an assistant's reply to the
    last (user) message in its conversation (``X-Linqra-Conversation-Id`` in and out)."""
    if body.model.startswith(ASSISTANT_MODEL):
        return await assistant_completion(
            system.chat,
            team.team_id,
            body,
            conversation_id=conversation_id,
            executed_by=team.executed_by(body.user),
        )
    return await chat_completion(system.llm, team.team_id, body)


@router.get("/v1/models", response_model=ModelList)
async def models(system: SystemDep, team: Viewer) -> dict[str, Any]:
    """The catalogue at the team's prices (its overrides marked), plus models only it prices."""
    return await list_models(system.llm, team.team_id)


@router.put(
    "/v1/models/{model_id}/price",
    response_model=PriceOverride,
    openapi_extra=body_schema(PriceInput),
)
async def put_price(system: SystemDep, team: SetPrice, model_id: ModelId, body: JsonObject) -> Any:
    """Set the team's own rates for a model (per million tokens, decimal text)."""
    return await set_price(system.llm, team.team_id, model_id, body)


@router.delete("/v1/models/{model_id}/price", status_code=204, response_class=Response)
async def delete_price(system: SystemDep, team: DeletePrice, model_id: ModelId) -> Response:
    """Back to the catalogue's price (404 when the team had none)."""
    await system.llm.overrides.delete(team.team_id, model_id)
    return Response(status_code=204)


@router.get("/v1/usage", response_model=UsageSummary)
async def usage(
    system: SystemDep,
    team: Viewer,
    group_by: Annotated[Literal["model", "provider", "day"], Query()] = "model",
    start: Annotated[
        str | None, Query(alias="from", description="ISO date or time, inclusive")
    ] = None,
    end: Annotated[str | None, Query(alias="to", description="ISO date or time, exclusive")] = None,
) -> dict[str, Any]:
    return await usage_summary(system.llm, team.team_id, group_by, start, end)


@router.get("/v1/budget", response_model=BudgetStatus)
async def get_budget(system: SystemDep, team: Viewer) -> dict[str, Any]:
    return await system.llm.budgets.status(team.team_id)


@router.put("/v1/budget", response_model=BudgetStatus)
async def put_budget(system: SystemDep, team: SetBudget, body: BudgetRequest) -> dict[str, Any]:
    """Set the limit; priced calls that would pass it are refused (402) before they run."""
    return await system.llm.budgets.set(team.team_id, body.amount, body.period)


@router.delete("/v1/budget", status_code=204, response_class=Response)
async def delete_budget(system: SystemDep, team: DeleteBudget) -> Response:
    await system.llm.budgets.clear(team.team_id)
    return Response(status_code=204)
