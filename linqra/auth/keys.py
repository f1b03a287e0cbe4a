"""Team API keys: ``lq_<id>_<secret>`` for machine clients, and public widget keys ``lq_pub_…``.

The secret is 32 random bytes (256 bits), shown once when the key is made; the store keeps only
``HMAC-SHA256(pepper, secret)``, compared in constant time. Keys of this entropy need no slow
password hash (argon2 would cost ~270 ms a request for nothing: nobody can guess 2^256); the
pepper (``LINQRA_API_KEY_PEPPER``, or in the embedded profile a file in the data directory)
means a stolen store alone cannot check guesses either.

A key holds scopes (``read``, ``write``, ``execute``, ``admin``) and a role no higher than its
creator's; it never manages keys or members. A widget key is bound to one resource (an
assistant or workflow id), holds only ``execute`` and names the web origins allowed to use it.

Each gateway replica remembers a checked key for ``auth.key_cache_seconds`` (≤ 5 s): a revoked
key stops working everywhere within that bound, and ``last_used_at`` is written at most once a
minute per key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from linqra.auth.directory import PLATFORM
from linqra.auth.principal import KEY_SCOPES, Permission, Role
from linqra.clock import iso, utcnow
from linqra.errors import Conflict, Forbidden, NotFound, Unauthenticated, ValidationError
from linqra.llm.budgets import parse_amount
from linqra.secrets.keyring import secret_file
from linqra.store import DocumentStore, IndexSpec
from linqra.validation import parse_model

__all__ = ["API_KEYS", "ApiKey", "ApiKeyInput", "ApiKeys", "IssuedKey", "KeyGrant", "load_pepper"]

API_KEYS = "api_keys"
INDEXES = [IndexSpec(API_KEYS, ("team", "created_at"))]
PEPPER_ENV = "LINQRA_API_KEY_PEPPER"
_KEY = re.compile(r"^lq_(pub_)?([a-z0-9]{16})_([A-Za-z0-9_-]{43})$")
_LAST_USED_EVERY = 60.0


class ApiKeyInput(BaseModel):
    """``POST /v1/api-keys``: a key for machines (``kind: api``) or a public widget key."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    kind: str = Field(default="api", pattern="^(api|widget)$")
    scopes: list[Permission] = Field(
        default_factory=lambda: [Permission.READ],
        max_length=4,
        json_schema_extra={"uniqueItems": True},
    )
    role: Role | None = Field(default=None, description="default: yours")
    expires_in_days: StrictInt | None = Field(default=None, ge=1, le=3650)
    resource: str | None = Field(
        default=None, max_length=128, description="widget keys: the assistant or workflow id"
    )
    allowed_origins: list[str] = Field(
        default_factory=list, max_length=50, description="widget keys: https://host[:port]"
    )
    spend_cap: str | None = Field(
        default=None,
        max_length=32,
        description="widget keys: what the LLM calls of the runs they start may cost per "
        "spend_period, in the catalogue's currency (decimal text)",
        examples=["5.00"],
    )
    spend_period: Literal["day", "month"] = "month"

    @field_validator("spend_cap")
    @classmethod
    def _cap(cls, cap: str | None) -> str | None:
        return None if cap is None else str(parse_amount(cap))

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, scopes: list[Permission]) -> list[Permission]:
        for scope in scopes:
            if scope not in KEY_SCOPES:
                raise ValueError(f"{scope} cannot be given to a key")
        return sorted(set(scopes))

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?", origin):
                raise ValueError(f"{origin[:100]!r} is not an origin (scheme://host[:port])")
        return [o.lower() for o in origins]


class ApiKey(BaseModel):
    """A key as listed: never its secret (only the fields named here leave the store)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    name: str
    kind: str
    prefix: str = Field(description="the key's first characters, to recognise it")
    scopes: list[Permission]
    role: Role
    resource: str | None = None
    allowed_origins: list[str] = Field(default_factory=list)
    spend_cap: str | None = None
    spend_period: str | None = None
    created_at: str
    created_by: str | None = None
    expires_at: str | None = None
    last_used_at: str | None = None
    rotated_at: str | None = None
    revoked_at: str | None = None
    revoked_because: str | None = None


class IssuedKey(ApiKey):
    key: str = Field(description="the whole key: shown once, never again")


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """What a checked key may do."""

    key_id: str
    team_id: str
    kind: str
    role: Role
    scopes: frozenset[Permission]
    resource: str | None
    allowed_origins: tuple[str, ...]


def load_pepper(data_dir: Path, *, embedded: bool) -> bytes:
    """The HMAC key for API key hashes: ``LINQRA_API_KEY_PEPPER`` (base64 or text, ≥ 32 bytes),
    else — embedded profile only — a random one kept in ``data_dir/api-key-pepper`` (0600)."""
    value = os.environ.get(PEPPER_ENV)
    if value:
        raw = value.encode()
        if len(raw) < 32:
            raise ValueError(f"{PEPPER_ENV} must be at least 32 characters")
        return raw
    if not embedded:
        raise ValueError(f"set {PEPPER_ENV} (32+ random characters) in the production profile")
    path = data_dir / "api-key-pepper"
    text = secret_file(path, lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    pepper = text.strip().encode()
    if len(pepper) < 32:
        raise ValueError(f"{path} holds less than 32 characters: delete it to make a new one")
    return pepper


class ApiKeys:
    """Issue, list, revoke and check API keys."""

    def __init__(self, store: DocumentStore, pepper: bytes, *, cache_seconds: float = 2.0) -> None:
        self.store = store
        self._pepper = pepper
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, str, KeyGrant]] = {}  # id → (until, digest, grant)
        self._used: dict[str, float] = {}

    async def init(self) -> None:
        await self.store.ensure_indexes(INDEXES)

    def visitor_token(self, key_id: str, resource_id: str) -> str:
        """A widget visitor's proof that it started ``resource_id`` (a conversation) with the
        widget key ``key_id``: everyone on the web page holds the key, only this visitor holds
        this token, so no visitor reads or continues another's conversation. HMAC-SHA256 with
        the key pepper; nothing is stored."""
        message = b"\x00".join((b"visitor", key_id.encode(), resource_id.encode()))
        mac = hmac.new(self._pepper, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def check_visitor(self, key_id: str, resource_id: str, token: str | None) -> None:
        """:class:`NotFound` (as for another team's id) unless ``token`` is the visitor's."""
        expected = self.visitor_token(key_id, resource_id).encode()
        if not token or not hmac.compare_digest(token.encode(), expected):
            raise NotFound(f"{resource_id!r} not found", field="X-Conversation-Token")

    def _hash(self, secret: str) -> str:
        return hmac.new(self._pepper, secret.encode(), hashlib.sha256).hexdigest()

    async def issue(
        self, team_id: str, body: Any, *, creator_role: Role, created_by: str | None
    ) -> IssuedKey:
        data = parse_model(ApiKeyInput, body)
        role = data.role or creator_role
        if not creator_role.at_least(role):
            raise Forbidden(f"a key cannot have more than your role ({creator_role})")
        scopes = data.scopes
        if data.kind == "widget":
            if not data.resource or not data.allowed_origins:
                raise ValidationError(
                    "a widget key needs resource and allowed_origins", field="allowed_origins"
                )
            scopes, role = [Permission.EXECUTE], Role.MEMBER
        elif data.resource or data.allowed_origins or data.spend_cap is not None:
            raise ValidationError(
                "resource, allowed_origins and spend_cap are for widget keys", field="kind"
            )
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        whole = f"lq_{'pub_' if data.kind == 'widget' else ''}{key_id}_{secret}"
        now = utcnow()
        doc = {
            "id": key_id,
            "team": team_id,
            "name": data.name,
            "kind": data.kind,
            "prefix": whole[: 14 if data.kind == "api" else 18],
            "hash": self._hash(secret),
            "scopes": [s.value for s in scopes],
            "role": role.value,
            "resource": data.resource,
            "allowed_origins": data.allowed_origins,
            "spend_cap": data.spend_cap,
            "spend_period": data.spend_period if data.spend_cap is not None else None,
            "created_at": iso(now),
            "created_by": created_by,
            "expires_at": iso(now + timedelta(days=data.expires_in_days))
            if data.expires_in_days
            else None,
            "last_used_at": None,
            "revoked_at": None,
        }
        await self.store.insert(API_KEYS, PLATFORM, doc)
        return IssuedKey.model_validate({**doc, "key": whole})

    async def list_keys(
        self, team_id: str, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[ApiKey], int]:
        where = {"team": team_id}
        docs = await self.store.find(
            API_KEYS, PLATFORM, where, sort=[("created_at", -1)], limit=limit, skip=offset
        )
        total = await self.store.count(API_KEYS, PLATFORM, where)
        return [ApiKey.model_validate(d) for d in docs], total

    async def revoke(self, team_id: str, key_id: str) -> ApiKey:
        doc = await self.store.get(API_KEYS, PLATFORM, key_id)
        if doc is None or doc["team"] != team_id:
            raise NotFound(f"no API key {key_id!r}", field="key_id")
        if doc["revoked_at"] is None:
            await self.store.update(
                API_KEYS, PLATFORM, key_id, {"revoked_at": iso()}, where={"revoked_at": None}
            )
        self._cache.pop(key_id, None)
        found = await self.store.get(API_KEYS, PLATFORM, key_id)
        assert found is not None
        return ApiKey.model_validate(found)

    async def cap_creator(self, team_id: str, creator: str, role: Role | None) -> int:
        """Revoke the keys ``creator`` made in the team whose role exceeds ``role`` (all of them
        when ``None``: they left or were suspended); how many."""
        docs = await self.store.find(
            API_KEYS, PLATFORM, {"team": team_id, "created_by": creator, "revoked_at": None},
            limit=1000,
        )  # fmt: skip
        revoked = 0
        for doc in docs:
            if role is None or not role.at_least(Role(doc["role"])):
                revoked += await self.store.update(
                    API_KEYS, PLATFORM, doc["id"],
                    {"revoked_at": iso(), "revoked_because": "its creator's role changed"},
                    where={"revoked_at": None},
                )  # fmt: skip
                self._cache.pop(doc["id"], None)
        return revoked

    async def rotate(self, team_id: str, key_id: str) -> IssuedKey:
        """A new secret for the same key (id, scopes, origins, expiry): the old secret stops
        working here at once and on every replica within the cache bound."""
        doc = await self.store.get(API_KEYS, PLATFORM, key_id)
        if doc is None or doc["team"] != team_id:
            raise NotFound(f"no API key {key_id!r}", field="key_id")
        if doc["revoked_at"] is not None:
            raise Conflict("a revoked key cannot be rotated: make a new one", field="key_id")
        secret = secrets.token_urlsafe(32)
        whole = f"lq_{'pub_' if doc['kind'] == 'widget' else ''}{key_id}_{secret}"
        changes = {"hash": self._hash(secret), "rotated_at": iso()}
        if not await self.store.update(
            API_KEYS, PLATFORM, key_id, changes, where={"hash": doc["hash"], "revoked_at": None}
        ):
            raise Conflict("the key changed meanwhile; try again", field="key_id")
        self._cache.pop(key_id, None)
        return IssuedKey.model_validate({**doc, **changes, "key": whole})

    async def check(self, presented: str) -> KeyGrant:
        """The grant of a presented key, or :class:`Unauthenticated` (same message for an
        unknown, malformed, revoked or expired key, so the answer tells an attacker nothing)."""
        match = _KEY.fullmatch(presented)
        if match is None:
            raise Unauthenticated("invalid API key", field="Authorization")
        key_id, secret = match.group(2), match.group(3)
        digest = self._hash(secret)
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now and hmac.compare_digest(cached[1], digest):
            return cached[2]
        doc = await self.store.get(API_KEYS, PLATFORM, key_id)
        if (
            doc is None
            or not hmac.compare_digest(doc["hash"], digest)
            or doc["revoked_at"] is not None
            or (doc["expires_at"] is not None and doc["expires_at"] <= iso())
            or bool(match.group(1)) != (doc["kind"] == "widget")
        ):
            self._cache.pop(key_id, None)
            raise Unauthenticated("invalid API key", field="Authorization")
        grant = KeyGrant(
            key_id=key_id,
            team_id=doc["team"],
            kind=doc["kind"],
            role=Role(doc["role"]),
            scopes=frozenset(Permission(s) for s in doc["scopes"]),
            resource=doc.get("resource"),
            allowed_origins=tuple(doc.get("allowed_origins") or ()),
        )
        self._cache[key_id] = (now + self._cache_seconds, digest, grant)
        if now - self._used.get(key_id, -_LAST_USED_EVERY) >= _LAST_USED_EVERY:
            self._used[key_id] = now
            await self.store.update(API_KEYS, PLATFORM, key_id, {"last_used_at": iso()})
        return grant
