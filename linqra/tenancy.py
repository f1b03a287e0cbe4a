"""Team context: the request-scoped tenant every read and write is scoped to.

Until authentication lands the team comes from the ``X-Team-Id`` header; the
gateway builds a :class:`TeamContext` once per request and only its *source*
changes when OIDC tokens and API keys replace the header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from linqra.errors import Unauthenticated, ValidationError

__all__ = ["TEAM_ID_PATTERN", "TeamContext", "validate_team_id"]

TEAM_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def validate_team_id(value: str | None, *, field: str = "X-Team-Id") -> str:
    """Return ``value`` if it is a well-formed team id, else raise a 4xx error."""
    if value is None or value == "":
        raise Unauthenticated(f"missing team: send the {field} header", field=field)
    if not TEAM_ID_PATTERN.fullmatch(value):
        raise ValidationError(
            f"invalid team id {value[:80]!r}: 1-64 characters of letters, digits, '_', '.', '-',"
            " starting with a letter or digit",
            field=field,
        )
    return value


@dataclass(frozen=True, slots=True)
class TeamContext:
    """Who is asking, on behalf of which team."""

    team_id: str
    user_id: str | None = None
    source: str = "header"

    def __post_init__(self) -> None:
        validate_team_id(self.team_id, field="team_id")
