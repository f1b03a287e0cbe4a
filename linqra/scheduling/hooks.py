"""Webhooks: a URL another system calls to publish an event on one of a team's topics.

``POST /v1/hooks`` makes a hook for a topic and answers its signing secret once; the secret is
stored sealed under the master keyring (:mod:`linqra.secrets`, associated data: the team and
``hook:<id>``). A caller signs every delivery when it sends it, Stripe-style::

    X-Linqra-Timestamp: <unix seconds>
    X-Linqra-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

A call is refused with 401 (counted in the hook's ``rejected``, publishing nothing) when the
timestamp is missing or malformed, when the signature is missing or wrong, when the timestamp
is more than ``agents.webhook_tolerance_seconds`` (default 300) from the server's clock either
way, and when the same signature was already accepted: a signature is remembered in the cache
(``cache_url``: per process with ``memory://``, shared by every gateway replica with Redis) for
twice the tolerance, the whole time a copy of it could pass the timestamp check. A call that
passes but then fails (a body that is not JSON, an event bus that is down) is forgotten, so the
same delivery may be retried. Because the timestamp is signed with the body, a captured call
cannot be re-sent later or with another ``X-Idempotency-Key`` (that header is not signed).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from linqra.cache import Cache
from linqra.clock import iso, new_id
from linqra.errors import NotFound, Unauthenticated
from linqra.events.base import check_topic
from linqra.secrets.keyring import Keyring, associated_data
from linqra.secrets.sealed import SealedField
from linqra.store import DocumentStore

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "HOOKS",
    "HOOK_SECRETS",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "HookService",
    "VerifiedCall",
    "sign",
]

HOOKS = "hooks"
HOOK_INDEX = "hook_index"
SYSTEM_TEAM = "_system"
SIGNATURE_HEADER = "X-Linqra-Signature"
TIMESTAMP_HEADER = "X-Linqra-Timestamp"
DEFAULT_TOLERANCE_SECONDS = 300.0
HOOK_SECRETS = SealedField(HOOKS, "secret_sealed", lambda doc: _name(doc["id"]), plaintext="secret")
"""The sealed signing secrets; ``secret`` is where hooks made before sealing kept it in clear
(still verified; ``linqra secrets rotate`` seals and clears it)."""
_HIDDEN = frozenset({"secret", "secret_sealed"})
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # not \d: that also matches '²' and other digits
_MALFORMED_TIMESTAMP = (
    f"missing or malformed {TIMESTAMP_HEADER}: send the unix time in seconds the call was signed at"
)
_WRONG_SIGNATURE = (
    f"missing or wrong {SIGNATURE_HEADER} "
    f'(v1=<hex HMAC-SHA256(secret, "<{TIMESTAMP_HEADER}>.<raw body>")>)'
)
_REPLAYED = (
    "this signature was already used: a replayed call is refused "
    "(sign each delivery with its own timestamp)"
)


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Linqra-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={digest.hexdigest()}"


@dataclass(frozen=True, slots=True)
class VerifiedCall:
    """A call whose signature passed: the hook, its team, and the mark that refuses a replay."""

    team_id: str
    hook: dict[str, Any]
    replay_key: str


def _name(hook_id: str) -> str:
    return f"hook:{hook_id}"


class HookService:
    """Hooks of a team and the verification of their calls. ``clock``: unix seconds."""

    def __init__(
        self,
        store: DocumentStore,
        keyring: Keyring,
        cache: Cache,
        *,
        tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.cache = cache
        self.tolerance = tolerance_seconds
        self.clock = clock

    async def create(self, team_id: str, topic: str, description: str = "") -> dict[str, Any]:
        """A new hook; the answer is the only one that holds its ``secret``."""
        check_topic(topic)
        hook_id = new_id("hk")
        secret = secrets.token_urlsafe(32)
        sealed = self.keyring.seal(secret, associated_data(team_id, _name(hook_id)))
        doc = {
            "id": hook_id, "topic": topic, "description": description[:500],
            "secret_sealed": sealed, "created_at": iso(), "accepted": 0, "rejected": 0,
        }  # fmt: skip
        await self.store.insert(HOOKS, team_id, doc)
        await self.store.insert(HOOK_INDEX, SYSTEM_TEAM, {"id": hook_id, "hook_team": team_id})
        return {**_public(doc), "secret": secret}

    async def list(self, team_id: str) -> list[dict[str, Any]]:
        return [_public(d) for d in await self.store.find(HOOKS, team_id, limit=500)]

    async def delete(self, team_id: str, hook_id: str) -> None:
        if not await self.store.delete(HOOKS, team_id, hook_id):
            raise NotFound(f"no hook {hook_id!r}", field="hook_id")
        await self.store.delete(HOOK_INDEX, SYSTEM_TEAM, hook_id)

    async def verify(
        self, hook_id: str, body: bytes, signature: str | None, timestamp: str | None
    ) -> VerifiedCall:
        """The verified call (404 for an unknown hook); 401, counted, for a missing, malformed or
        wrong signature or timestamp, a stale one, or a replay. Release the call with
        :meth:`forget` if it then fails, count it with :meth:`accepted` once published."""
        index = await self.store.get(HOOK_INDEX, SYSTEM_TEAM, hook_id)
        hook = await self.store.get(HOOKS, index["hook_team"], hook_id) if index else None
        if index is None or hook is None:
            raise NotFound(f"no hook {hook_id!r}", field="hook_id")
        team_id = index["hook_team"]
        given_ts = (timestamp or "").strip()
        if not _TIMESTAMP.fullmatch(given_ts):
            await self._refuse(team_id, hook, TIMESTAMP_HEADER, _MALFORMED_TIMESTAMP)
        expected = sign(self._secret(team_id, hook), given_ts, body)
        given = (signature or "").strip()
        # compare_digest refuses non-ASCII text (TypeError): such a signature is simply wrong
        if not given.isascii() or not hmac.compare_digest(given, expected):
            await self._refuse(team_id, hook, SIGNATURE_HEADER, _WRONG_SIGNATURE)
        skew = self.clock() - int(given_ts)
        if abs(skew) > self.tolerance:
            when = f"{skew:.0f} s old" if skew > 0 else f"{-skew:.0f} s ahead of the server"
            message = (
                f"{TIMESTAMP_HEADER} is {when}, outside the {self.tolerance:g} s tolerance: "
                "sign each delivery when it is sent"
            )
            await self._refuse(team_id, hook, TIMESTAMP_HEADER, message)
        replay_key = f"hook-sig:{hook_id}:{hashlib.sha256(expected.encode()).hexdigest()[:40]}"
        if await self.cache.incr(replay_key, 1, ttl_seconds=2 * self.tolerance + 1) > 1:
            await self._refuse(team_id, hook, SIGNATURE_HEADER, _REPLAYED)
        return VerifiedCall(team_id, hook, replay_key)

    async def forget(self, call: VerifiedCall) -> None:
        """A verified call failed before it was published: its signature may be sent again."""
        await self.cache.delete(call.replay_key)

    async def accepted(self, call: VerifiedCall) -> None:
        """Count a verified call whose event was published (a refused one writes nothing)."""
        await self.store.update(
            HOOKS,
            call.team_id,
            call.hook["id"],
            {"accepted": call.hook["accepted"] + 1, "last_accepted_at": iso()},
        )

    def _secret(self, team_id: str, hook: Mapping[str, Any]) -> str:
        sealed = hook.get("secret_sealed")
        if sealed is None and isinstance(hook.get("secret"), str):
            return str(hook["secret"])  # made before secrets were sealed
        return self.keyring.open(sealed or {}, associated_data(team_id, _name(hook["id"])))

    async def _refuse(
        self, team_id: str, hook: Mapping[str, Any], header: str, message: str
    ) -> NoReturn:
        await self.store.update(
            HOOKS,
            team_id,
            hook["id"],
            {"rejected": hook["rejected"] + 1, "last_rejected_at": iso()},
        )
        raise Unauthenticated(message, field=header)


def _public(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in _HIDDEN}
