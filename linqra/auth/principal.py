"""Who is asking: one :class:`Principal` per request, from exactly one credential.

A principal acts for one team with one :class:`Role` (``viewer < member < admin``). What a route
needs is one :class:`Permission`; :meth:`Principal.require` is the whole check:

=================  =========  ===========================================================
permission         least role what it covers
=================  =========  ===========================================================
``read``           viewer     reading the team's resources
``write``          member     creating, changing and deleting workflows, agents, tasks, …
``execute``        member     running workflows and tasks, chatting, calling models
``admin``          admin      budgets, prices, hooks, provider secrets, the audit log
``manage_access``  admin      API keys and members — never through an API key
=================  =========  ===========================================================

An API key carries *scopes* (a subset of ``read``, ``write``, ``execute``, ``admin``) and the
role of the member who made it (or less); it never holds ``manage_access``. A widget key holds
only ``execute`` on the one resource it is bound to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from linqra.errors import Forbidden, NotFound
from linqra.tenancy import validate_team_id

__all__ = ["KEY_SCOPES", "Permission", "Principal", "Role", "Source"]

Source = Literal["header", "jwt", "api_key", "widget"]


class Role(StrEnum):
    VIEWER = "viewer"
    MEMBER = "member"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: Role) -> bool:
        return _RANK[self] >= _RANK[other]


_RANK = {Role.VIEWER: 1, Role.MEMBER: 2, Role.ADMIN: 3}


class Permission(StrEnum):
    READ = "read"
    WRITE = "write"
    EXECUTE = "execute"
    ADMIN = "admin"
    MANAGE_ACCESS = "manage_access"

    @property
    def least_role(self) -> Role:
        return _LEAST_ROLE[self]


_LEAST_ROLE = {
    Permission.READ: Role.VIEWER,
    Permission.WRITE: Role.MEMBER,
    Permission.EXECUTE: Role.MEMBER,
    Permission.ADMIN: Role.ADMIN,
    Permission.MANAGE_ACCESS: Role.ADMIN,
}
KEY_SCOPES = frozenset({Permission.READ, Permission.WRITE, Permission.EXECUTE, Permission.ADMIN})
"""What an API key may be given; ``manage_access`` is never one of them."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request, acting for ``team_id``.

    ``scopes`` is ``None`` for a person (everything their role allows) and the key's scopes for
    an API or widget key. ``platform_admin``: the caller holds the platform role
    (``gateway_admin``; in header mode, everyone); ``cross_team``: it acts on a team it is not a
    member of (every such request is audited). ``resource`` binds a widget key to one assistant
    or workflow id.
    """

    team_id: str
    role: Role
    source: Source
    user_id: str | None = None
    scopes: frozenset[Permission] | None = None
    key_id: str | None = None
    platform_admin: bool = False
    cross_team: bool = False
    resource: str | None = None
    teams: tuple[str, ...] = field(default=())
    """every team the credential may act for (``X-Team-Id`` chooses among them)"""

    def __post_init__(self) -> None:
        validate_team_id(self.team_id, field="team_id")

    @property
    def actor(self) -> str:
        """Who, for the audit log: ``key:<id>`` for keys, else the user id."""
        if self.key_id is not None:
            return f"key:{self.key_id}"
        return self.user_id or "anonymous"

    def allows(self, permission: Permission) -> bool:
        if not self.role.at_least(permission.least_role):
            return False
        if permission is Permission.MANAGE_ACCESS:
            return self.source in ("jwt", "header")
        return self.scopes is None or permission in self.scopes

    def executed_by(self, claimed: str | None) -> str | None:
        """Who a run records as its caller: in header mode the name the body gives (nothing is
        verified there anyway), otherwise the verified actor, whatever the body claims."""
        if self.source == "header":
            return claimed
        return self.actor

    def require_resource(self, resource_id: str) -> None:
        """A widget key acts only on the resource it is bound to; any other id is not found
        for it (as another team's ids are)."""
        if self.resource is not None and resource_id != self.resource:
            raise NotFound(f"{resource_id!r} not found", field="id")

    def require(self, permission: Permission) -> Principal:
        """This principal, or :class:`~linqra.errors.Forbidden` naming what is missing."""
        if self.allows(permission):
            return self
        if permission is Permission.MANAGE_ACCESS and self.source not in ("jwt", "header"):
            raise Forbidden("API keys cannot manage keys or members: sign in as a team admin")
        if not self.role.at_least(permission.least_role):
            raise Forbidden(
                f"this needs the {permission.least_role} role in team {self.team_id!r}; "
                f"you are {self.role}"
            )
        raise Forbidden(f"this key lacks the {permission} scope")
