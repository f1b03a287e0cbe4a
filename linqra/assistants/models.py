"""Assistants: what ``POST/PUT /v1/assistants`` accept and the records the API returns.

An assistant's configuration (:class:`AssistantSpec`) is written once and shared: the input
(:class:`AssistantInput`, strict: no unknown field, no number as text) and the records
(:class:`Assistant`, :class:`AssistantVersion`, which keep any other stored field,
``extra="allow"``). Field names are Linqra's camelCase ones. The bounds here are checked again
when a record is read, so tightening one needs a migration of the stored versions.

What pydantic cannot check — that the tasks and collections exist for the team, that the
provider is configured, the model settings, duplicates — is checked by
:class:`~linqra.assistants.service.AssistantService`, each refusal a 400 naming the field.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from linqra._config_types import WebOrigin
from linqra.assistants.guardrails import GuardrailSettings

__all__ = [
    "MAX_SYSTEM_PROMPT",
    "AccessControl",
    "Assistant",
    "AssistantInput",
    "AssistantKnowledge",
    "AssistantSpec",
    "AssistantStatus",
    "AssistantVersion",
    "ContextManagement",
    "ModelChoice",
    "SelectedTask",
    "WidgetConfig",
]

MAX_SYSTEM_PROMPT = 20_000
"""Characters of an assistant's system prompt."""

Id = Field(min_length=1, max_length=128)


class AssistantStatus(StrEnum):
    """Only an ACTIVE assistant chats; DRAFT and INACTIVE ones are refused with 409."""

    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    DRAFT = "DRAFT"


class _Part(BaseModel):
    # a part of the body: strict (no "60" for 60, no true for 1) and no unknown field
    model_config = ConfigDict(extra="forbid", strict=True)


class ModelChoice(_Part):
    """The model an assistant answers with, and its settings (``temperature``, ``max_tokens``,
    … as in :func:`linqra.llm.types.parse_settings`)."""

    provider: str = Field(min_length=1, max_length=64, pattern=r"^[\w.-]+$")
    modelName: str = Field(min_length=1, max_length=200, pattern=r"^[\w.:/-]+$")
    settings: dict[str, Any] = Field(default_factory=dict)

    def ref(self) -> str:
        """``provider:modelName``, what the LLM service resolves."""
        return f"{self.provider}:{self.modelName}"


class SelectedTask(_Part):
    """A task of the team's agents the assistant may call as a tool."""

    taskId: str = Id
    timeoutSeconds: float = Field(default=60, gt=0, le=600)


class AssistantKnowledge(_Part):
    """Knowledge collections searched for context (ids; a name is stored as its id)."""

    collections: list[str] = Field(default_factory=list, max_length=10)
    topK: int = Field(default=5, ge=1, le=50)


class ContextManagement(_Part):
    """How much of a conversation goes back to the model."""

    strategy: Literal["sliding_window"] = "sliding_window"
    maxRecentMessages: int = Field(default=20, ge=0, le=200)
    maxTotalTokens: int = Field(default=4000, ge=100, le=1_000_000)


class AccessControl(_Part):
    """Only a ``PUBLIC`` assistant answers a public widget key, and — when ``allowedDomains``
    lists any — only on those sites (origins ``scheme://host[:port]``), besides the key's own
    ``allowed_origins``."""

    type: Literal["PRIVATE", "PUBLIC"] = "PRIVATE"
    allowedDomains: list[WebOrigin] = Field(default_factory=list, max_length=50)


class WidgetConfig(_Part):
    """How the embeddable chat widget looks on a web page (``console/widget``); a page's
    ``data-*`` attributes override each field."""

    title: str = Field(default="Chat", min_length=1, max_length=100)
    welcomeMessage: str = Field(default="Hi! How can I help?", max_length=1000)
    placeholder: str = Field(default="Type your question…", max_length=200)
    primaryColor: str = Field(default="#1c7ed6", pattern=r"^#[0-9a-fA-F]{6}$")
    textColor: str = Field(default="#ffffff", pattern=r"^#[0-9a-fA-F]{6}$")
    position: Literal["left", "right"] = "right"


class AssistantSpec(BaseModel):
    """An assistant's configuration: one version of it."""

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    # strict=False: the body's text "DRAFT" is the enum's value (strict takes only members)
    status: AssistantStatus = Field(default=AssistantStatus.ACTIVE, strict=False)
    defaultModel: ModelChoice | None = Field(
        default=None, description="null: the configured default model"
    )
    systemPrompt: str = Field(default="", max_length=MAX_SYSTEM_PROMPT)
    selectedTasks: list[SelectedTask] = Field(default_factory=list, max_length=10)
    knowledge: AssistantKnowledge | None = None
    contextManagement: ContextManagement = Field(default_factory=ContextManagement)
    accessControl: AccessControl = Field(default_factory=AccessControl)
    widgetConfig: WidgetConfig = Field(default_factory=WidgetConfig)
    guardrails: GuardrailSettings = Field(
        default_factory=GuardrailSettings, description="input and output rules (docs/guardrails.md)"
    )
    doubleTexting: Literal["reject", "enqueue", "interrupt", "rollback"] = Field(
        default="enqueue", description="a message while the previous one is still answered"
    )
    onDisconnect: Literal["continue", "cancel"] = Field(
        default="continue", description="what a run does when its client goes away"
    )


class AssistantInput(AssistantSpec):
    """The body of ``POST /v1/assistants`` and ``PUT /v1/assistants/{id}``."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Assistant(AssistantSpec):
    """An assistant at its current version."""

    model_config = ConfigDict(extra="allow")

    id: str
    version: int
    created_at: str
    updated_at: str | None = None


class AssistantVersion(AssistantSpec):
    """One stored version (``rolled_back_from``: the version it copies)."""

    model_config = ConfigDict(extra="allow")

    assistant_id: str
    version: int
    created_at: str
    created_by: str | None = None
    rolled_back_from: int | None = None
