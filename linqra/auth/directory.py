"""Teams and their members, kept in the store.

Both live in the platform partition of the document store (``PLATFORM``, which no team id can
name: team ids start with a letter or digit), because a sign-in asks "which teams is this user
in?" before it knows a team. A membership is ``{team, user_id, role, status}``; its id is
``<team>:<user_id>``, so a user is a member of a team at most once.

Where a role comes from, highest wins: the token's groups (``/teams/<team>/<role>``, managed
in the identity provider), the token's ``teams`` claim (``member``), and the stored membership
(managed here by team admins). A stored membership with status ``suspended`` denies the team
whatever the token says.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from linqra.auth.principal import Role
from linqra.clock import iso
from linqra.errors import Conflict, NotFound, ValidationError
from linqra.store import DocumentStore, IndexSpec
from linqra.tenancy import validate_team_id
from linqra.validation import parse_model

__all__ = [
    "MEMBERSHIPS",
    "PLATFORM",
    "TEAMS",
    "Member",
    "MemberInput",
    "TeamDirectory",
    "TeamInput",
    "TeamRecord",
]

PLATFORM = "_platform"
TEAMS = "teams"
MEMBERSHIPS = "memberships"
INDEXES = [
    IndexSpec(TEAMS, ("created_at",)),
    IndexSpec(MEMBERSHIPS, ("user_id",)),
    IndexSpec(MEMBERSHIPS, ("team", "created_at")),
]
USER_ID = r"^[\w@.:|+-]{1,200}$"


class TeamInput(BaseModel):
    """``POST /v1/teams`` (platform admins): a team and its first admin."""

    # built on first use: compiling ``USER_ID`` (``\w`` is Unicode, 200 times over) takes
    # pydantic-core's regex engine ~70 ms, paid at start by every process that imports this
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    id: str = Field(min_length=1, max_length=64, description="the team id clients send")
    name: str = Field(default="", max_length=200)
    admin: str = Field(pattern=USER_ID, description="the user id (`sub`) of its first admin")


class MemberInput(BaseModel):
    """``PUT /v1/members/{user_id}``: a member's role and status."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    status: str = Field(default="active", pattern="^(active|suspended)$")


class TeamRecord(BaseModel):
    """A team (only these fields leave the store: its partition key never does)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    name: str = ""
    created_at: str
    created_by: str | None = None
    role: Role | None = Field(default=None, description="your role in it (in lists of your teams)")


class Member(BaseModel):
    """A stored membership (only these fields leave the store)."""

    model_config = ConfigDict(extra="ignore")

    user_id: str
    role: Role
    status: str
    created_at: str
    updated_at: str | None = None
    updated_by: str | None = None


class TeamDirectory:
    """Teams and memberships for every team (the team is an argument)."""

    def __init__(self, store: DocumentStore, *, cache_seconds: float = 0.0) -> None:
        self.store = store
        self._cache_seconds = cache_seconds
        # user → (until, memberships): a sign-in reads them on every request otherwise
        self._cache: dict[str, tuple[float, dict[str, tuple[Role, str]]]] = {}

    async def init(self) -> None:
        await self.store.ensure_indexes(INDEXES)

    # -- teams ---------------------------------------------------------------------------
    async def create_team(self, body: Any, *, created_by: str | None) -> TeamRecord:
        data = parse_model(TeamInput, body)
        team_id = validate_team_id(data.id, field="id")
        now = iso()
        doc = {"id": team_id, "name": data.name, "created_at": now, "created_by": created_by}
        try:
            await self.store.insert(TEAMS, PLATFORM, doc)
        except Conflict:
            raise Conflict(f"team {team_id!r} exists", field="id") from None
        await self.set_member(team_id, data.admin, {"role": Role.ADMIN}, by=created_by)
        return TeamRecord.model_validate(doc)

    async def get_team(self, team_id: str) -> TeamRecord | None:
        doc = await self.store.get(TEAMS, PLATFORM, team_id)
        return None if doc is None else TeamRecord.model_validate(doc)

    # -- members -------------------------------------------------------------------------
    async def set_member(self, team_id: str, user_id: str, body: Any, *, by: str | None) -> Member:
        """Add or change a member (``role``, ``status``). The team's last active admin stays
        one (409): checked after the write and undone, so two admins demoting each other at
        once cannot both succeed."""
        data = parse_model(MemberInput, body)
        _check_user(user_id)
        key = f"{team_id}:{user_id}"
        before = await self.store.get(MEMBERSHIPS, PLATFORM, key)
        self._cache.pop(user_id, None)
        await self._write_member(team_id, user_id, data, by)
        if _was_admin(before) and await self.admins(team_id) == 0:
            assert before is not None
            restore = {k: before.get(k) for k in ("role", "status", "updated_at", "updated_by")}
            await self.store.update(MEMBERSHIPS, PLATFORM, key, restore)
            raise Conflict("the team's last active admin stays an admin", field="user_id")
        return await self.member(team_id, user_id)

    async def _write_member(
        self, team_id: str, user_id: str, data: MemberInput, by: str | None
    ) -> None:
        key = f"{team_id}:{user_id}"
        now = iso()
        changes = {"role": data.role.value, "status": data.status, "updated_at": now}
        if not await self.store.update(MEMBERSHIPS, PLATFORM, key, {**changes, "updated_by": by}):
            try:
                await self.store.insert(
                    MEMBERSHIPS,
                    PLATFORM,
                    {"id": key, "team": team_id, "user_id": user_id, "created_at": now,
                     **changes, "updated_by": by},
                )  # fmt: skip
            except Conflict:  # added meanwhile: set it
                await self.store.update(MEMBERSHIPS, PLATFORM, key, {**changes, "updated_by": by})

    async def member(self, team_id: str, user_id: str) -> Member:
        doc = await self.store.get(MEMBERSHIPS, PLATFORM, f"{team_id}:{user_id}")
        if doc is None:
            raise NotFound(f"{user_id!r} is not a member of this team", field="user_id")
        return Member.model_validate(doc)

    async def remove_member(self, team_id: str, user_id: str) -> None:
        """Remove a member; not the team's last active admin (409, checked as in set_member)."""
        _check_user(user_id)
        key = f"{team_id}:{user_id}"
        before = await self.store.get(MEMBERSHIPS, PLATFORM, key)
        self._cache.pop(user_id, None)
        if before is None or not await self.store.delete(MEMBERSHIPS, PLATFORM, key):
            raise NotFound(f"{user_id!r} is not a member of this team", field="user_id")
        if _was_admin(before) and await self.admins(team_id) == 0:
            await self.store.insert(
                MEMBERSHIPS, PLATFORM, {k: v for k, v in before.items() if k != "team_id"}
            )
            raise Conflict("the team's last active admin stays an admin", field="user_id")

    async def members(
        self, team_id: str, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[Member], int]:
        where = {"team": team_id}
        docs = await self.store.find(
            MEMBERSHIPS, PLATFORM, where, sort=[("created_at", 1)], limit=limit, skip=offset
        )
        total = await self.store.count(MEMBERSHIPS, PLATFORM, where)
        return [Member.model_validate(d) for d in docs], total

    async def memberships(self, user_id: str) -> dict[str, tuple[Role, str]]:
        """Every stored membership of ``user_id``: team → (role, status). Remembered for
        ``cache_seconds`` (``auth.key_cache_seconds``): a change made on another replica is
        seen within that bound, one made here at once."""
        now = time.monotonic()
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        docs = await self.store.find(MEMBERSHIPS, PLATFORM, {"user_id": user_id}, limit=1000)
        found = {d["team"]: (Role(d["role"]), d["status"]) for d in docs}
        if self._cache_seconds > 0:
            if len(self._cache) >= 10_000:
                self._cache.pop(next(iter(self._cache)))
            self._cache[user_id] = (now + self._cache_seconds, found)
        return found

    async def admins(self, team_id: str) -> int:
        return await self.store.count(
            MEMBERSHIPS, PLATFORM, {"team": team_id, "role": Role.ADMIN.value, "status": "active"}
        )


def _was_admin(doc: dict[str, Any] | None) -> bool:
    return doc is not None and doc["role"] == Role.ADMIN.value and doc["status"] == "active"


def _check_user(user_id: str) -> None:
    if not isinstance(user_id, str) or not 1 <= len(user_id) <= 200 or not user_id.isprintable():
        raise ValidationError("user_id is 1-200 printable characters", field="user_id")
