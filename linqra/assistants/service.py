"""Stored assistants with versions, team-scoped, as workflows are.

An assistant is a head ``{id, created_at, updated_at, deleted_at, version, status}`` plus its
versions; every create, update or rollback inserts a version document ``{assistant_id,
version, <the configuration>}`` (unique on ``assistant_id, version``), and that insert is the
write that counts: the current version is the highest stored one. The head's ``version`` and
``status`` are a copy, written right after the version (only forward: a compare-and-set on
``version``) so that lists can filter by status; a read that finds the copy behind (a crash
between the two writes) brings it forward. Deleting an assistant hides it.

References are checked at every write, rollback included: each selected task and knowledge
collection must be the team's own, the model's provider configured — a 400 naming the field.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from linqra.assistants.models import (
    Assistant,
    AssistantInput,
    AssistantStatus,
    AssistantVersion,
)
from linqra.clock import iso, new_id
from linqra.errors import Conflict, NotFound, ValidationError
from linqra.llm.types import parse_settings
from linqra.store import Document, DocumentStore, IndexSpec
from linqra.validation import parse_model

if TYPE_CHECKING:
    from linqra.agents.service import AgentService
    from linqra.knowledge.service import KnowledgeService
    from linqra.llm.service import LLMService

__all__ = ["ASSISTANTS", "INDEXES", "VERSIONS", "AssistantService"]

ASSISTANTS = "assistants"
VERSIONS = "assistant_versions"
INDEXES = [
    IndexSpec(ASSISTANTS, ("created_at",)),
    IndexSpec(ASSISTANTS, ("status", "created_at")),
    IndexSpec(VERSIONS, ("assistant_id", "version"), unique=True),
]
_SPEC_FIELDS = tuple(AssistantInput.model_fields)


class AssistantService:
    """Assistants and their versions for any team (the team is an argument).

    ``agents`` and ``knowledge`` check the tasks and collections an assistant names; ``llm``
    (default: the knowledge service's) knows the configured providers.
    """

    def __init__(
        self,
        store: DocumentStore,
        agents: AgentService,
        knowledge: KnowledgeService,
        llm: LLMService | None = None,
    ) -> None:
        self.store = store
        self.agents = agents
        self.knowledge = knowledge
        self.llm = llm if llm is not None else knowledge.llm

    async def init(self) -> None:
        """Create indexes; safe on every start-up."""
        await self.store.ensure_indexes(INDEXES)

    # -- writes ---------------------------------------------------------------------------------
    async def create(self, team_id: str, body: Any, *, created_by: str | None = None) -> Assistant:
        """A new assistant at version 1; 400 naming the field for any bad input."""
        spec = await self._checked(team_id, body)
        assistant_id = new_id("as")
        now = iso()
        version = _version_doc(assistant_id, 1, spec, now, created_by)
        await self.store.insert(VERSIONS, team_id, version)
        head = {
            "id": assistant_id,
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
            "version": 1,
            "status": spec["status"],
        }
        await self.store.insert(ASSISTANTS, team_id, head)
        return _view(head, version)

    async def update(
        self,
        team_id: str,
        assistant_id: str,
        body: Any,
        *,
        created_by: str | None = None,
        expected_version: int | None = None,
    ) -> Assistant:
        """A new version; with ``expected_version`` only if that is still the current one
        (409 otherwise, and for the loser of two updates at once)."""
        head = await self._head(team_id, assistant_id)
        spec = await self._checked(team_id, body)
        return await self._append(
            team_id, head, spec, created_by=created_by, expected_version=expected_version
        )

    async def rollback(
        self, team_id: str, assistant_id: str, version: int, *, created_by: str | None = None
    ) -> Assistant:
        """A new version equal to ``version`` (``rolled_back_from``), its references checked
        again: a task deleted since is a 400."""
        old = await self.version(team_id, assistant_id, version)
        head = await self._head(team_id, assistant_id)
        spec = await self._checked(team_id, old.model_dump(mode="json", include=set(_SPEC_FIELDS)))
        return await self._append(team_id, head, spec, created_by=created_by, rolled_back=version)

    async def delete(self, team_id: str, assistant_id: str) -> None:
        """Hidden from now on (404 on every route)."""
        await self._head(team_id, assistant_id)
        await self.store.update(ASSISTANTS, team_id, assistant_id, {"deleted_at": iso()})

    # -- reads ----------------------------------------------------------------------------------
    async def get(self, team_id: str, assistant_id: str) -> Assistant:
        """The assistant at its current version; 404 for a deleted one or another team's."""
        head = await self._head(team_id, assistant_id)
        return _view(head, await self._current(team_id, head))

    async def chat_ready(self, team_id: str, assistant_id: str) -> Assistant:
        """The assistant if it may chat now; 409 naming its status when it is DRAFT or
        INACTIVE."""
        assistant = await self.get(team_id, assistant_id)
        if assistant.status is not AssistantStatus.ACTIVE:
            raise Conflict(
                f"assistant {assistant_id!r} is {assistant.status.value}: only an ACTIVE "
                "assistant chats",
                field="status",
            )
        return assistant

    async def list(
        self,
        team_id: str,
        *,
        status: AssistantStatus | str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[builtins.list[Assistant], int]:
        """The team's assistants at their current version, newest first, optionally only
        those with ``status``; ``(page, total)``."""
        where: dict[str, Any] = {"deleted_at": None}
        if status is not None:
            if status not in set(AssistantStatus):
                raise ValidationError(f"unknown status {status!r}", field="status")
            where["status"] = str(status)
        heads = await self.store.find(
            ASSISTANTS, team_id, where, sort=[("created_at", -1)], limit=limit, skip=offset
        )
        total = await self.store.count(ASSISTANTS, team_id, where)
        return [_view(h, await self._current(team_id, h)) for h in heads], total

    async def get_version(self, team_id: str, assistant_id: str, version: int) -> Assistant:
        """The assistant as it was at ``version`` (what a conversation started on it uses)."""
        head = await self._head(team_id, assistant_id)
        return _view(head, await self._version_doc(team_id, assistant_id, version))

    async def versions(
        self, team_id: str, assistant_id: str, *, limit: int = 50, offset: int = 0
    ) -> tuple[builtins.list[AssistantVersion], int]:
        """Every version, newest first; ``(page, total)``."""
        await self._head(team_id, assistant_id)
        where = {"assistant_id": assistant_id}
        docs = await self.store.find(
            VERSIONS, team_id, where, sort=[("version", -1)], limit=limit, skip=offset
        )
        total = await self.store.count(VERSIONS, team_id, where)
        return [_version_view(d) for d in docs], total

    async def version(self, team_id: str, assistant_id: str, version: int) -> AssistantVersion:
        """One stored version; 404 when there is no such version."""
        await self._head(team_id, assistant_id)
        return _version_view(await self._version_doc(team_id, assistant_id, version))

    # -- internals ------------------------------------------------------------------------------
    async def _head(self, team_id: str, assistant_id: str) -> Document:
        doc = await self.store.get(ASSISTANTS, team_id, assistant_id)
        if doc is None or doc.get("deleted_at"):
            raise NotFound(f"assistant {assistant_id!r} not found", field="assistant_id")
        return doc

    async def _latest(self, team_id: str, assistant_id: str) -> Document:
        found = await self.store.find(
            VERSIONS, team_id, {"assistant_id": assistant_id}, sort=[("version", -1)], limit=1
        )
        if not found:
            raise NotFound(f"assistant {assistant_id!r} not found", field="assistant_id")
        return found[0]

    async def _version_doc(self, team_id: str, assistant_id: str, version: int) -> Document:
        doc = await self.store.get(VERSIONS, team_id, f"{assistant_id}@{version}")
        if doc is None:
            raise NotFound(f"assistant {assistant_id!r} has no version {version}", field="version")
        return doc

    async def _current(self, team_id: str, head: Document) -> Document:
        """The highest version; the head's copy brought forward if a crash left it behind."""
        latest = await self._latest(team_id, head["id"])
        if head.get("version") != latest["version"]:
            await self._advance(team_id, head["id"], latest)
        return latest

    async def _advance(self, team_id: str, assistant_id: str, version: Document) -> None:
        changes = {
            "version": version["version"],
            "status": version["status"],
            "updated_at": version["created_at"],
        }
        # forward only: of two writers, the later version's copy stays
        where = {"version": {"$lt": version["version"]}}
        await self.store.update(ASSISTANTS, team_id, assistant_id, changes, where=where)

    async def _append(
        self,
        team_id: str,
        head: Document,
        spec: Document,
        *,
        created_by: str | None,
        expected_version: int | None = None,
        rolled_back: int | None = None,
    ) -> Assistant:
        assistant_id = head["id"]
        latest = await self._latest(team_id, assistant_id)
        if expected_version is not None and latest["version"] != expected_version:
            raise Conflict(
                f"assistant is at version {latest['version']}, not {expected_version}",
                field="If-Match",
            )
        version = _version_doc(
            assistant_id, latest["version"] + 1, spec, iso(), created_by, rolled_back
        )
        try:
            await self.store.insert(VERSIONS, team_id, version)
        except Conflict:  # another write took this version number first
            raise Conflict(
                f"assistant {assistant_id!r} changed while this write was made: read it and "
                "try again",
                field="If-Match" if expected_version is not None else "version",
            ) from None
        await self._advance(team_id, assistant_id, version)
        return _view(head, version)

    async def _checked(self, team_id: str, body: Any) -> Document:
        """``body`` as a stored configuration: validated, its references checked for the team
        (collections named by name are stored by id)."""
        data = parse_model(AssistantInput, body)
        if data.defaultModel is not None:
            providers = self.llm.settings.llm.providers
            if data.defaultModel.provider not in providers:
                raise ValidationError(
                    f"unknown provider {data.defaultModel.provider!r} (configured: "
                    f"{', '.join(sorted(providers))})",
                    field="defaultModel.provider",
                )
            settings = parse_settings(data.defaultModel.settings, "defaultModel.settings")
            model = data.defaultModel
            price = self.llm.catalogue.price(model.provider, model.modelName)
            window = price.context_window if price else None
            if window and settings.max_tokens and settings.max_tokens >= window:
                raise ValidationError(
                    f"max_tokens {settings.max_tokens} leaves no room for a prompt in "
                    f"{model.ref()}'s context window of {window} tokens",
                    field="defaultModel.settings.max_tokens",
                )
        seen: set[str] = set()
        for i, selected in enumerate(data.selectedTasks):
            field = f"selectedTasks[{i}].taskId"
            if selected.taskId in seen:
                raise ValidationError(f"task {selected.taskId!r} is selected twice", field=field)
            seen.add(selected.taskId)
            try:
                await self.agents.get_task(team_id, selected.taskId)
            except NotFound:
                raise ValidationError(f"no task {selected.taskId!r}", field=field) from None
        spec = data.model_dump(mode="json")
        if data.knowledge is not None:
            spec["knowledge"]["collections"] = await self._collection_ids(
                team_id, data.knowledge.collections
            )
        return spec

    async def _collection_ids(self, team_id: str, refs: builtins.list[str]) -> builtins.list[str]:
        ids: builtins.list[str] = []
        for i, ref in enumerate(refs):
            field = f"knowledge.collections[{i}]"
            try:
                collection = await self.knowledge.get_collection(team_id, ref)
            except NotFound:
                raise ValidationError(f"no knowledge collection {ref!r}", field=field) from None
            if collection.id in ids:
                raise ValidationError(f"collection {ref!r} is named twice", field=field)
            ids.append(collection.id)
        return ids


def _version_doc(
    assistant_id: str,
    version: int,
    spec: Mapping[str, Any],
    now: str,
    created_by: str | None,
    rolled_back_from: int | None = None,
) -> Document:
    doc: Document = {
        **spec,
        "id": f"{assistant_id}@{version}",
        "assistant_id": assistant_id,
        "version": version,
        "created_at": now,
        "created_by": created_by,
    }
    if rolled_back_from is not None:
        doc["rolled_back_from"] = rolled_back_from
    return doc


def _view(head: Document, version: Document) -> Assistant:
    spec = {k: version[k] for k in _SPEC_FIELDS if k in version}
    return Assistant.model_validate(
        {
            "id": head["id"],
            **spec,
            "version": version["version"],
            "created_at": head["created_at"],
            "updated_at": version["created_at"],
        }
    )


def _version_view(doc: Document) -> AssistantVersion:
    return AssistantVersion.model_validate(
        {k: v for k, v in doc.items() if k not in ("id", "team_id")}
    )
