"""Team ids: the tenant every read and write is scoped to.

A team id is 1-64 letters, digits, ``_``, ``.``, ``-``, starting with a letter or digit. It is
checked strictly and never normalised: ``"team-a "`` is refused, not read as ``team-a``. Who
may act for a team is :mod:`linqra.auth`'s business.
"""

from __future__ import annotations

import re

from linqra.errors import Unauthenticated, ValidationError

__all__ = ["TEAM_ID_PATTERN", "validate_team_id"]

TEAM_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def validate_team_id(value: str | None, *, field: str = "X-Team-Id") -> str:
    """Return ``value`` if it is a well-formed team id, else raise a 4xx error."""
    if value is None or value == "":
        raise Unauthenticated(f"missing team: send the {field} header", field=field)
    if not isinstance(value, str) or not TEAM_ID_PATTERN.fullmatch(value):
        raise ValidationError(
            f"invalid team id {str(value)[:80]!r}: 1-64 characters of letters, digits, '_', '.',"
            " '-', starting with a letter or digit",
            field=field,
        )
    return value
