"""Provider secrets as the API accepts and shows them: a value goes in, only its last four
characters ever come out. Views list their fields explicitly (no ``extra="allow"`` as other
records have), so nothing stored beside them can reach a response."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MAX_SECRET_CHARS", "MIN_SECRET_CHARS", "RotationReport", "SecretInput", "SecretView"]

MIN_SECRET_CHARS = 8
MAX_SECRET_CHARS = 4096


class SecretInput(BaseModel):
    """The body of ``PUT /v1/secrets/{provider}``: the provider's API key for this team."""

    model_config = ConfigDict(extra="forbid")
    value: str = Field(
        min_length=MIN_SECRET_CHARS,
        max_length=MAX_SECRET_CHARS,
        description="the API key; printable ASCII without spaces (stored sealed, never shown)",
    )


class SecretView(BaseModel):
    """A team's stored key for one provider, masked."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    provider: str
    last4: str = Field(description="the key's last four characters")
    key_version: int = Field(description="the master key version it is sealed with")
    created_at: str
    updated_at: str


class RotationReport(BaseModel):
    """What ``linqra secrets rotate`` re-sealed with the newest master key."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    key_version: int
    secrets: int = Field(description="provider secrets re-sealed")
    hooks: int = Field(
        description="webhook signing secrets re-sealed (or sealed for the first time)"
    )
    failed: int = Field(description="rows that did not open (left as they were)")
