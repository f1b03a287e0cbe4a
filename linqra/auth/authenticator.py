"""From a request's credentials to its one :class:`~linqra.auth.principal.Principal`.

Exactly one credential counts:

* ``Authorization: Bearer <JWT>`` — an OIDC access token (``auth.mode: oidc``), verified by
  :class:`~linqra.auth.oidc.OidcVerifier`; the user's teams are the token's (``teams``,
  ``groups``) and their stored memberships (:mod:`linqra.auth.directory`);
* ``Authorization: Bearer lq_…`` or ``X-API-Key: lq_…`` — a team API key or a public widget key
  (:mod:`linqra.auth.keys`), in either mode;
* nothing but ``X-Team-Id`` — header mode (embedded profile only): whoever can reach the
  gateway acts as an admin of the team they name. A bearer token that is not an API key is
  ignored in this mode (there is no identity provider to check it against; OpenAI SDK clients
  always send one).

``X-Team-Id`` otherwise only chooses among the credential's own teams (403 for another), and may
be left out when there is one. A ``gateway_admin`` may act on any team; the request is marked so
the audit log records it. Two different credentials in one request are a 400.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from linqra.auth.directory import TeamDirectory
from linqra.auth.keys import ApiKeys
from linqra.auth.principal import Principal, Role
from linqra.config import AuthSettings
from linqra.errors import Forbidden, Unauthenticated, ValidationError
from linqra.tenancy import validate_team_id

if TYPE_CHECKING:
    from linqra.auth.oidc import Identity, OidcVerifier

__all__ = ["Authenticator", "Credentials"]


@dataclass(frozen=True, slots=True)
class Credentials:
    """The parts of a request that can identify its caller (raw header values)."""

    authorization: str | None = None
    api_key: str | None = None
    team: str | None = None
    origin: str | None = None


class Authenticator:
    def __init__(
        self,
        settings: AuthSettings,
        directory: TeamDirectory,
        keys: ApiKeys,
        verifier: OidcVerifier | None = None,
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.keys = keys
        self.verifier = verifier

    @property
    def header_mode(self) -> bool:
        return self.settings.mode == "header"

    async def authenticate(self, creds: Credentials) -> Principal:
        if creds.api_key is not None and not creds.api_key.startswith("lq_"):
            raise Unauthenticated("X-API-Key takes a Linqra API key (lq_…)", field="X-API-Key")
        bearer = _bearer(creds.authorization)
        if bearer is not None and self.verifier is None and not bearer.startswith("lq_"):
            # header mode has no identity provider: a bearer that is not one of our keys is no
            # credential here (OpenAI SDK clients always send some api_key), X-Team-Id decides
            bearer = None
        if bearer is not None and creds.api_key is not None and bearer != creds.api_key:
            raise ValidationError(
                "send one credential: Authorization or X-API-Key, not both", field="Authorization"
            )
        presented = bearer if bearer is not None else creds.api_key
        if presented is None:
            if self.header_mode:
                team = validate_team_id(creds.team)
                return Principal(team, Role.ADMIN, "header", platform_admin=True, teams=(team,))
            raise Unauthenticated(
                "sign in: send Authorization: Bearer <access token> or an API key",
                field="Authorization",
            )
        if presented.startswith("lq_"):
            return await self._key(presented, creds)
        return await self._token(presented, creds)

    async def _key(self, presented: str, creds: Credentials) -> Principal:
        grant = await self.keys.check(presented)
        if creds.team is not None and validate_team_id(creds.team) != grant.team_id:
            raise _denied(
                "this key belongs to another team",
                "X-Team-Id",
                grant.team_id,
                f"key:{grant.key_id}",
            )
        if grant.kind == "widget":
            origin = (creds.origin or "").lower()
            if not origin or origin not in grant.allowed_origins:
                raise _denied(
                    "this widget key is not allowed from this origin",
                    "Origin",
                    grant.team_id,
                    f"key:{grant.key_id}",
                )
        return Principal(
            grant.team_id,
            grant.role,
            "widget" if grant.kind == "widget" else "api_key",
            scopes=grant.scopes,
            key_id=grant.key_id,
            resource=grant.resource,
            teams=(grant.team_id,),
        )

    async def _token(self, token: str, creds: Credentials) -> Principal:
        assert self.verifier is not None
        identity = await self.verifier.verify(token)
        roles: dict[str, Role] = {}
        for team, role in identity.teams.items():
            roles[team] = _best(roles.get(team), _role(role))
        suspended: set[str] = set()
        for team, (role, status) in (await self.directory.memberships(identity.user_id)).items():
            if status != "active":
                suspended.add(team)
            else:
                roles[team] = _best(roles.get(team), role)
        teams = sorted(t for t in roles if t not in suspended and _valid_team(t))
        if creds.team is not None:
            team = validate_team_id(creds.team)
            if team in teams:
                return self._person(identity, team, roles[team], teams)
            if identity.platform_admin:
                return Principal(
                    team, Role.ADMIN, "jwt", user_id=identity.user_id,
                    platform_admin=True, cross_team=True, teams=tuple(teams),
                )  # fmt: skip
            raise _denied(
                f"you are not a member of team {team!r}", "X-Team-Id", team, identity.user_id
            )
        if len(teams) == 1:
            return self._person(identity, teams[0], roles[teams[0]], teams)
        if not teams:
            raise _denied(
                "you are not a member of any team: ask a team admin to add you",
                "X-Team-Id",
                None,
                identity.user_id,
            )
        raise ValidationError(
            f"you are in {len(teams)} teams: send X-Team-Id to choose one", field="X-Team-Id"
        )

    @staticmethod
    def _person(identity: Identity, team: str, role: Role, teams: Iterable[str]) -> Principal:
        return Principal(
            team, role, "jwt", user_id=identity.user_id,
            platform_admin=identity.platform_admin, teams=tuple(teams),
        )  # fmt: skip


def _denied(message: str, field: str, team: str | None, actor: str) -> Forbidden:
    """A 403 that tells the audit log who was refused which team (``team``/``actor``)."""
    err = Forbidden(message, field=field)
    err.team, err.actor = team, actor  # type: ignore[attr-defined]
    return err


def _bearer(value: str | None) -> str | None:
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():  # the scheme is case-insensitive
        raise Unauthenticated("Authorization must be 'Bearer <token>'", field="Authorization")
    return token.strip()


def _role(name: str | None) -> Role:
    """A role named in a token (``/teams/<team>/<role>``); listed without one: member."""
    if name is None:
        return Role.MEMBER
    try:
        return Role(name)
    except ValueError:
        return Role.VIEWER  # an unknown role name in the IdP grants the least, never more


def _best(current: Role | None, new: Role) -> Role:
    return new if current is None or new.at_least(current) else current


def _valid_team(team: str) -> bool:
    try:
        validate_team_id(team)
    except ValidationError:
        return False
    return True
