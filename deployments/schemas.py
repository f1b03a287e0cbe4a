"""The API's own response shapes (the page envelope, health, errors, Linqra's answer) and the
helpers that put every route's schema in ``/openapi.json``.

Records (workflows, executions, agents, …) are modelled where they live, in ``linqra/*/models.py``;
each keeps unknown fields (``extra="allow"``). Routes are :class:`RecordRoute`, which serialises a
response through its model *without adding the model's defaults*: a client sees the record's
fields as the service returned them, now also described in the schema.
"""

from typing import Any, Generic, TypeVar

from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SSE_CONTENT",
    "SSE_HEADERS",
    "ErrorDetail",
    "ErrorResponse",
    "Health",
    "ItemList",
    "LinqResponse",
    "MilvusSearchBody",
    "Page",
    "RecordRoute",
    "body_schema",
]

T = TypeVar("T")


class RecordRoute(APIRoute):
    """An ``APIRoute`` whose response model leaves out fields the record does not have."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["response_model_exclude_unset"] = True
        super().__init__(*args, **kwargs)


class Page(BaseModel, Generic[T]):
    """One page of a list, newest first; ``next_offset`` is ``null`` on the last page."""

    items: list[T]
    total: int = Field(description="items in the whole list")
    limit: int
    offset: int
    next_offset: int | None


class ItemList(BaseModel, Generic[T]):
    """A short list returned whole."""

    items: list[T]
    total: int


class Health(BaseModel):
    status: str = Field(description="ok or degraded", examples=["ok"])
    version: str
    checks: dict[str, str] = Field(
        description='each dependency: "ok" or "error: <ExceptionClass>"',
        examples=[{"store": "ok", "runner": "ok"}],
    )


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(examples=["invalid_request"])
    message: str
    field: str | None = Field(default=None, description="the field at fault, e.g. steps[0].target")
    request_id: str | None = Field(default=None, description="also in the X-Request-Id header")
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    """Every error: a 4xx for bad input, 503 (with ``Retry-After``) when a dependency is down."""

    error: ErrorDetail


class LinqResponse(BaseModel):
    """Linqra's answer: ``result`` (``steps``, ``finalResult``, ``pendingAsyncSteps``) and
    ``metadata`` (``status``, ``teamId``, ``executionId``, ``cacheHit``, ``workflowMetadata``)."""

    model_config = ConfigDict(extra="allow")

    result: dict[str, Any]
    metadata: dict[str, Any]


class MilvusSearchBody(BaseModel):
    """Linqra's Milvus search intent (each value under any of its names)."""

    model_config = ConfigDict(extra="allow")

    text: str | None = Field(default=None, description="or query, textField")
    topK: int | None = Field(default=None, description="or nResults, top_k; default 5")
    filter: str | dict[str, Any] | None = None


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` describing a JSON body as ``model`` for a route that takes the raw object
    and has its service check it (so errors keep the service's field names)."""
    schema = _inline(model.model_json_schema(), model.model_json_schema().get("$defs", {}))
    schema.pop("$defs", None)
    return {"requestBody": {"content": {"application/json": {"schema": schema}}}}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Nested models' ``$ref`` replaced by their schemas (input models are not recursive)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


SSE_CONTENT = {
    "text/event-stream": {"schema": {"type": "string", "description": "server-sent events"}}
}
"""An SSE answer in the OpenAPI schema (``responses={200: {"content": SSE_CONTENT, …}}``)."""
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""The headers of every SSE answer: not cached, not buffered by a proxy."""
