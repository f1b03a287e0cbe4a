"""Verifying OpenID Connect access tokens (JWTs) against the identity provider's published keys.

:class:`OidcVerifier` turns a bearer token into an :class:`Identity` or raises:

* :class:`InvalidToken` (401, code ``invalid_token``) for anything wrong with the token itself:
  malformed, oversized, an algorithm outside ``auth.oidc.algorithms`` (``HS*`` and ``none`` are
  never allowed, whatever the token's header says), a bad signature, an unknown ``kid``,
  expired, not yet valid (``nbf``, ``iat``), a foreign ``iss`` or ``aud``, a missing ``exp``,
  ``iat`` or user claim. Messages are short and fixed: never the token, never a claim value.
* :class:`~linqra.errors.Unavailable` (503) when the token names a key the verifier has never
  seen and the provider cannot be reached to fetch it: the caller may be fine, we cannot tell.

Keys. The JSON Web Key Set is read from ``auth.oidc.jwks_uri`` or, when that is unset, from the
``jwks_uri`` of the issuer's discovery document (whose ``issuer`` must equal ours). It is kept
``jwks_cache_seconds``; after that, a token whose key is cached is still verified at once while
one background request refreshes the set (a refreshed set replaces the old one, so a key the
provider stops publishing stops verifying). A token whose ``kid`` is unknown refreshes the set
before an answer, at most once per ``jwks_refresh_cooldown_seconds`` — a flood of forged kids
costs the provider one request per cooldown. Concurrent verifies share one in-flight refresh.
When the provider is unreachable the cached keys keep working (and are retried once per
cooldown): an identity-provider outage does not log everyone out.

Why not ``jwt.PyJWKClient``: it fetches with ``urllib`` synchronously, which would block the
gateway's event loop for up to the HTTP timeout on every refresh, and its cache cannot keep
serving stale keys while the provider is down nor share one refresh between concurrent callers.
So the two documents are fetched here with aiohttp (already a dependency) and the keys are
parsed and used with PyJWT's own :class:`~jwt.PyJWK`; all the cryptography and claim checks stay
PyJWT's (pinned ``>=2.13``, which refuses HS/RS key confusion and unknown ``crit`` headers).

Claims map the Keycloak way (see :class:`~linqra.config.OidcSettings`): roles from
``realm_access.roles`` plus ``resource_access.<client_id>.roles`` (only the configured
``client_id``'s: other clients' role names mean other things); teams from the ``teams`` claim
(a list of team ids, no role) and from ``groups`` entries ``/teams/<team>/<role>`` (Keycloak's
group mapper must send full paths). Team ids that are not valid Linqra team ids are dropped,
never normalised into another team.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import jwt

from linqra.config import OidcSettings
from linqra.errors import Unauthenticated, Unavailable, ValidationError
from linqra.tenancy import TEAM_ID_PATTERN

__all__ = ["MAX_TOKEN_CHARS", "Identity", "InvalidToken", "OidcVerifier"]

logger = logging.getLogger(__name__)

MAX_TOKEN_CHARS = 16 * 1024
"""Longer bearer tokens are refused before any parsing (a Keycloak token with a few hundred
groups stays well below)."""
_ACCESS_TOKEN_TYPES = frozenset({"jwt", "at+jwt", "application/at+jwt"})
"""JWT header ``typ`` values of access tokens (RFC 9068); absent counts as ``JWT``."""
_NOT_ACCESS_TOKENS = frozenset({"ID", "Refresh", "Logout", "Offline"})
"""Keycloak's ``typ`` claim on tokens that sign a user in but grant nothing (an ID token's
``aud`` is the client id, which a gateway may also accept as an audience)."""

VERIFIED_CACHE_SECONDS = 5.0
"""How long a verified token is taken as verified again without checking (never past its
``exp``; a key refresh forgets them all). Tokens cannot be revoked before they expire anyway."""
VERIFIED_CACHE_SIZE = 10_000
_MAX_DOCUMENT_BYTES = 1024 * 1024  # a discovery document or key set larger than this is refused
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_ROLE_ORDER = ("admin", "member", "viewer")  # as linqra.auth.principal.Role; unknown rank last


class InvalidToken(Unauthenticated):
    """The bearer token is not acceptable (401 with ``WWW-Authenticate: Bearer``)."""

    code = "invalid_token"


@dataclass(frozen=True)
class Identity:
    """Who a verified access token speaks for."""

    user_id: str
    """The ``user_claim`` (``sub``): stable, what memberships and audit records use."""
    username: str | None
    """The ``username_claim`` (``preferred_username``), for display only."""
    roles: frozenset[str]
    """Realm roles and the configured client's roles."""
    teams: dict[str, str | None]
    """Team id → the role a ``/teams/<team>/<role>`` group gives, or ``None`` when the team is
    only listed (``teams`` claim, or a ``/teams/<team>`` group). An explicit role wins over a
    bare listing; of two roles for one team the higher (admin > member > viewer > other)."""
    platform_admin: bool
    """The token carries ``platform_admin_role`` (``gateway_admin``)."""
    token_id: str | None
    """``jti``, when the provider sets one."""
    expires_at: datetime
    """``exp``, in UTC."""


@dataclass(frozen=True)
class _KeySet:
    keys: dict[str | None, dict[str, Any]]  # kid → public JWK (kid None: a key without kid)
    fetched_at: float  # monotonic


class OidcVerifier:
    """Verifies access tokens issued by one OpenID provider for this gateway.

    Build one per process and share it: it holds the key cache. ``await warm()`` at start-up
    (optional), ``await verify(token)`` per request, ``await aclose()`` when done (it cancels a
    background refresh still running).
    """

    def __init__(self, settings: OidcSettings) -> None:
        if not settings.issuer:
            raise ValidationError(
                "auth.oidc.issuer is required to verify tokens", field="auth.oidc.issuer"
            )
        if not settings.audience:
            raise ValidationError(
                "auth.oidc.audience needs at least one accepted audience",
                field="auth.oidc.audience",
            )
        weak = [a for a in settings.algorithms if a.startswith("HS") or a.lower() == "none"]
        if weak:
            raise ValidationError(
                f"auth.oidc.algorithms may not contain {weak}: tokens are verified with the "
                "provider's public keys",
                field="auth.oidc.algorithms",
            )
        self.settings = settings
        self._issuer: str = settings.issuer
        self._audience = list(settings.audience)
        self._algorithms = frozenset(settings.algorithms)
        self._required = ["exp", "iat", "iss", "aud"]
        self._jwt = jwt.PyJWT(options={"enforce_minimum_key_length": True})
        self._jwks_uri: str | None = settings.jwks_uri
        self._keys: _KeySet | None = None
        # verified tokens → (identity, until): a client sends the same token with every request
        self._verified: dict[bytes, tuple[Identity, float]] = {}
        self._pyjwks: dict[tuple[str | None, str], jwt.PyJWK] = {}
        self._last_attempt: float | None = None
        self._last_ok = False
        self._inflight: asyncio.Task[None] | None = None
        self.refreshes = 0
        """How many times the key set was requested (for metrics and tests)."""

    # -- the one public operation ---------------------------------------------------------
    async def verify(self, token: str) -> Identity:
        """The :class:`Identity` a valid access token speaks for.

        Raises :class:`InvalidToken` for a token that is not acceptable and
        :class:`~linqra.errors.Unavailable` when its key cannot be fetched (provider down).
        """
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("token is malformed or too long")
        digest = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(digest)
        if known is not None:
            if time.monotonic() < known[1]:
                return known[0]
            del self._verified[digest]
        identity = await self._verify(token)
        until = time.monotonic() + VERIFIED_CACHE_SECONDS
        left = identity.expires_at.timestamp() - time.time()  # never past the token's expiry
        until = min(until, time.monotonic() + left)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))  # the oldest
        self._verified[digest] = (identity, until)
        return identity

    async def _verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, TypeError, ValueError):
            raise InvalidToken("token is malformed") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise InvalidToken("token algorithm is not allowed")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("token is malformed")
        if str(header.get("typ", "JWT")).lower() not in _ACCESS_TOKEN_TYPES:
            raise InvalidToken("token is not an access token")  # e.g. typ "id+jwt", "logout+jwt"
        key = await self._key(kid, alg)
        try:
            claims = self._jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self.settings.leeway_seconds,
                options={"require": self._required},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("token audience is not accepted") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("token issuer is not accepted") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("token signature is invalid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"token has no {exc.claim!r} claim") from None
        except jwt.InvalidAlgorithmError:
            raise InvalidToken("token algorithm is not allowed") from None
        except (jwt.PyJWTError, TypeError, ValueError, OverflowError):
            raise InvalidToken("token is malformed") from None
        if claims.get("typ") in _NOT_ACCESS_TOKENS:  # Keycloak's ID and refresh tokens say so
            raise InvalidToken("token is not an access token")
        return self._identity(claims)

    async def warm(self) -> bool:
        """Fetch the provider's keys now (at start-up, so that the first request does not wait
        for them); whether they could be fetched. Never raises: verify works it out later."""
        await asyncio.shield(self._start_refresh())
        return self._last_ok

    async def aclose(self) -> None:
        """Cancel a background key refresh still running (call before the event loop ends)."""
        task, self._inflight = self._inflight, None
        if task is not None and not task.done():
            task.cancel()
            # RuntimeError: a task of another (closed) event loop
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await task

    # -- keys -----------------------------------------------------------------------------
    async def _key(self, kid: str | None, alg: str) -> jwt.PyJWK:
        now = time.monotonic()
        keys = self._keys
        if keys is not None and self._find(keys, kid) is not None:
            if now - keys.fetched_at > self.settings.jwks_cache_seconds and self._may_refresh(now):
                self._start_refresh()  # stale: answer with the cached key, refresh behind
            return self._pyjwk(keys, kid, alg)
        # unknown kid (or no keys yet): ask the provider, at most once per cooldown
        if self._may_refresh(now) or self._refreshing():
            await asyncio.shield(self._start_refresh())
        keys = self._keys
        if keys is not None and self._find(keys, kid) is not None:
            return self._pyjwk(keys, kid, alg)
        if not self._last_ok:
            raise Unavailable(
                "the identity provider cannot be reached to fetch its signing keys",
                retry_after=max(1.0, self.settings.jwks_refresh_cooldown_seconds),
            )
        if kid is None:
            raise InvalidToken("token has no key id")
        raise InvalidToken("token signing key is unknown")

    @staticmethod
    def _find(keys: _KeySet, kid: str | None) -> dict[str, Any] | None:
        if kid is None and len(keys.keys) == 1:  # no kid: only unambiguous with one key
            return next(iter(keys.keys.values()))
        return keys.keys.get(kid) if kid is not None else None

    def _pyjwk(self, keys: _KeySet, kid: str | None, alg: str) -> jwt.PyJWK:
        cached = self._pyjwks.get((kid, alg))
        if cached is not None:
            return cached
        jwk = self._find(keys, kid)
        assert jwk is not None
        if jwk.get("alg", alg) != alg:
            raise InvalidToken("token algorithm does not match its key")
        try:
            key = jwt.PyJWK(jwk, algorithm=alg)
        except (jwt.PyJWTError, TypeError, ValueError):
            raise InvalidToken("token algorithm does not match its key") from None
        if self._keys is keys:  # a refresh may have replaced the set meanwhile
            self._pyjwks[(kid, alg)] = key
        return key

    def _may_refresh(self, now: float) -> bool:
        if self._refreshing():
            return False
        last = self._last_attempt
        return last is None or now - last >= self.settings.jwks_refresh_cooldown_seconds

    def _refreshing(self) -> bool:
        task = self._inflight
        return task is not None and not task.done() and _same_loop(task)

    def _start_refresh(self) -> asyncio.Task[None]:
        """The refresh in flight on this event loop, or a new one (never two at once)."""
        task = self._inflight
        if task is None or task.done() or not _same_loop(task):
            self._last_attempt = time.monotonic()
            task = asyncio.get_running_loop().create_task(self._refresh())
            self._inflight = task
        return task

    async def _refresh(self) -> None:
        """Fetch the key set; on any failure keep the cached keys and log why (never raises)."""
        self.refreshes += 1
        url = self._jwks_uri
        try:
            timeout = aiohttp.ClientTimeout(total=self.settings.http_timeout_seconds)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                if url is None:
                    url = await self._discover(session)
                document = await _get_json(session, url)
            keys = _public_keys(document)
        except Exception as exc:  # any failure (refused, timeout, bad JSON): keep the cached keys
            self._last_ok = False
            logger.warning(
                "oidc signing keys not refreshed issuer=%s url=%s: %s",
                self._issuer,
                url,
                _reason(exc),
            )
            return
        self._jwks_uri = url
        self._keys = _KeySet(keys, time.monotonic())
        self._verified.clear()  # a key the provider stopped publishing verifies nothing more
        self._pyjwks = {}
        self._last_ok = True
        logger.info(
            "oidc signing keys refreshed issuer=%s kids=%s",
            self._issuer,
            sorted(str(k) for k in keys),
        )

    async def _discover(self, session: aiohttp.ClientSession) -> str:
        url = self._issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = await _get_json(session, url)
        if document.get("issuer") != self._issuer:
            raise ValueError(f"discovery document at {url} names another issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise ValueError(f"discovery document at {url} has no http(s) jwks_uri")
        return jwks_uri

    # -- claims ---------------------------------------------------------------------------
    def _identity(self, claims: dict[str, Any]) -> Identity:
        s = self.settings
        user_id = claims.get(s.user_claim)
        if not isinstance(user_id, str) or not user_id:
            raise InvalidToken(f"token has no {s.user_claim!r} claim")
        username = claims.get(s.username_claim)
        roles = set(_strings(_path(claims, "realm_access", "roles")))
        if s.client_id:
            roles.update(_strings(_path(claims, "resource_access", s.client_id, "roles")))
        teams: dict[str, str | None] = {}
        for team in _strings(claims.get(s.teams_claim)):
            if TEAM_ID_PATTERN.fullmatch(team):
                teams.setdefault(team, None)
        prefix = s.team_group_prefix
        for group in _strings(claims.get(s.groups_claim)):
            if not group.startswith(prefix):
                continue
            team, _, role = group[len(prefix) :].partition("/")
            if not TEAM_ID_PATTERN.fullmatch(team) or "/" in role:
                continue
            if role:
                teams[team] = _higher(teams.get(team), role)
            else:
                teams.setdefault(team, None)
        jti = claims.get("jti")
        try:
            expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
        except (OverflowError, ValueError, OSError):
            raise InvalidToken("token is malformed") from None
        return Identity(
            user_id=user_id,
            username=username if isinstance(username, str) and username else None,
            roles=frozenset(roles),
            teams=teams,
            platform_admin=s.platform_admin_role in roles,
            token_id=jti if isinstance(jti, str) and jti else None,
            expires_at=expires_at,
        )


# -- helpers ------------------------------------------------------------------------------
def _same_loop(task: asyncio.Task[None]) -> bool:
    try:
        return task.get_loop() is asyncio.get_running_loop()
    except RuntimeError:
        return False


async def _get_json(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url, headers={"Accept": "application/json"}) as response:
        if response.status != 200:
            raise ValueError(f"{url} answered HTTP {response.status}")
        body = await response.content.read(_MAX_DOCUMENT_BYTES + 1)
    if len(body) > _MAX_DOCUMENT_BYTES:
        raise ValueError(f"{url} answered more than {_MAX_DOCUMENT_BYTES} bytes")
    try:
        document = json.loads(body)
    except ValueError:
        raise ValueError(f"{url} did not answer JSON") from None
    if not isinstance(document, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return document


def _public_keys(document: Mapping[str, Any]) -> dict[str | None, dict[str, Any]]:
    """The signature keys of a JWK set, private members dropped, by ``kid``.

    Encryption keys and symmetric (``oct``) keys are ignored: a token signed with a secret the
    provider shares is never accepted here.
    """
    raw = document.get("keys")
    if not isinstance(raw, list):
        raise ValueError("the key set has no 'keys' list")
    keys: dict[str | None, dict[str, Any]] = {}
    for jwk in raw:
        if not isinstance(jwk, dict) or jwk.get("kty") in (None, "oct"):
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        ops = jwk.get("key_ops")
        if isinstance(ops, list) and "verify" not in ops:
            continue
        kid = jwk.get("kid")
        if kid is not None and not isinstance(kid, str):
            continue
        public = {k: v for k, v in jwk.items() if k not in _PRIVATE_MEMBERS}
        try:
            jwt.PyJWK(public)  # usable at all? (the algorithm is checked per token)
        except (jwt.PyJWTError, TypeError, ValueError):
            continue
        keys.setdefault(kid, public)
    if not keys:
        raise ValueError("the key set has no usable signature key")
    return keys


def _path(claims: Mapping[str, Any], *names: str) -> Any:
    value: Any = claims
    for name in names:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, str) and v]


def _higher(current: str | None, role: str) -> str:
    if current is None:
        return role

    def rank(name: str) -> int:
        return _ROLE_ORDER.index(name) if name in _ROLE_ORDER else len(_ROLE_ORDER)

    return role if rank(role) < rank(current) else current


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
