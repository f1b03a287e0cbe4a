"""Knowledge Hub HTTP helpers: document upload (multipart file or JSON text) and search bodies.

Routes live on the gateway (``/v1/knowledge/...``); this module turns requests into calls of
:class:`linqra.knowledge.service.KnowledgeService` with the errors named by field.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.requests import Request

from deployments.limits import loads_strict
from linqra.errors import ValidationError
from linqra.knowledge.extract import declared_type
from linqra.knowledge.service import MAX_TOP_K, KnowledgeService

__all__ = ["SearchRequest", "TextDocument", "upload_document"]


class TextDocument(BaseModel):
    """Raw text as a document (JSON upload)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=500)
    text: str = Field(min_length=1)
    file_name: str | None = Field(default=None, max_length=255)
    mime_type: str | None = Field(default=None, max_length=100)
    metadata: dict[str, Any] = Field(default_factory=dict)


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str | None = Field(default=None, max_length=20_000)
    vector: list[float] | None = None
    top_k: int = Field(default=5, ge=1, le=MAX_TOP_K)
    filter: str | dict[str, Any] | None = None
    min_score: float | None = Field(default=None, ge=-1, le=1)
    embedder: str | None = None


async def upload_document(
    knowledge: KnowledgeService, team_id: str, collection_id: str, request: Request
) -> tuple[dict[str, Any], bool]:
    """``multipart/form-data`` (``file`` + optional ``title``, ``metadata`` as JSON text) or JSON."""
    content_type = request.headers.get("content-type", "")
    await knowledge.get_collection(team_id, collection_id)  # 404 before reading a large body
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=10)
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ValidationError("send the document as the form field 'file'", field="file")
            data = await upload.read()
            metadata = _json_field(form.get("metadata"), "metadata")
            title = form.get("title")
            return await knowledge.add_document(
                team_id,
                collection_id,
                data,
                file_name=upload.filename,
                mime_type=upload.content_type
                if upload.content_type != "application/octet-stream"
                else None,
                title=title if isinstance(title, str) and title else None,
                metadata=metadata,
            )
        finally:
            await form.close()
    if "json" not in content_type:
        raise ValidationError(
            "upload a file as multipart/form-data, or raw text as JSON {title, text}",
            field="content-type",
        )
    try:
        body = TextDocument.model_validate_json(await request.body())
    except ValueError as exc:
        errors: list[Any] = getattr(exc, "errors", list)()
        first = errors[0] if errors else {"loc": ("body",), "msg": str(exc)}
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise ValidationError(str(first["msg"]), field=field) from None
    if declared_type(body.mime_type) == "application/pdf":
        raise ValidationError(
            "a JSON document is text: upload a PDF as multipart/form-data", field="mime_type"
        )
    return await knowledge.add_document(
        team_id,
        collection_id,
        body.text.encode(),
        file_name=body.file_name,
        mime_type=body.mime_type or ("text/plain" if not body.file_name else None),
        title=body.title,
        metadata=body.metadata,
    )


def _json_field(raw: Any, field: str) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, str):
        raise ValidationError(f"{field} is JSON text", field=field)
    value = loads_strict(raw, where=field)  # NaN, 1e400, … are a 400 naming the path
    if not isinstance(value, dict):
        raise ValidationError(f"{field} is a JSON object", field=field)
    return value
