"""The audit log: who did what to which resource of a team, and how it ended. Append-only.

An event is ``{at, team, actor, source, action, resource, outcome, status, client_ip,
request_id, details}``. It is written to the team's partition (``PLATFORM`` for requests that
never got a team, such as a failed sign-in), so a team admin reads only their team's events.
Nothing in an event is a credential: callers pass ids and names, and :meth:`AuditLog.record`
drops any detail whose key looks like one (``token``, ``key``, ``secret``, ``password``,
``authorization``) as a second line of defence.

Events are never updated; :meth:`AuditLog.prune` deletes those older than the retention.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from linqra.auth.directory import PLATFORM
from linqra.clock import iso, new_id, utcnow
from linqra.store import DocumentStore, IndexSpec

__all__ = ["AUDIT", "AuditEvent", "AuditLog"]

log = logging.getLogger(__name__)

AUDIT = "audit_events"
INDEXES = [
    IndexSpec(AUDIT, ("at",)),
    IndexSpec(AUDIT, ("action", "at")),
    IndexSpec(AUDIT, ("actor", "at")),
]
_SECRET_KEY = re.compile(r"token|key$|secret|password|authorization|credential", re.I)


class AuditEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    at: str
    team: str | None
    actor: str
    source: str | None = None
    action: str
    resource: str | None = None
    outcome: str
    status: int | None = None
    client_ip: str | None = None
    request_id: str | None = None
    details: dict[str, Any] = {}


class AuditLog:
    def __init__(self, store: DocumentStore, *, retention_days: int = 365) -> None:
        self.store = store
        self.retention = timedelta(days=retention_days)

    async def init(self) -> None:
        await self.store.ensure_indexes(INDEXES)

    async def record(
        self,
        *,
        team: str | None,
        actor: str,
        action: str,
        outcome: str,
        source: str | None = None,
        resource: str | None = None,
        status: int | None = None,
        client_ip: str | None = None,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one event. A store outage is logged, not raised: the request it describes
        has already been answered."""
        doc = {
            "id": new_id("au"),
            "at": iso(),
            "team": team,
            "actor": actor,
            "source": source,
            "action": action,
            "resource": resource,
            "outcome": outcome,
            "status": status,
            "client_ip": client_ip,
            "request_id": request_id,
            "details": {k: v for k, v in (details or {}).items() if not _SECRET_KEY.search(str(k))},
        }
        try:
            await self.store.insert(AUDIT, team or PLATFORM, doc)
        except Exception as exc:  # the store is down: say so once per event, keep serving
            log.warning("audit event %s %s not recorded: %s", action, outcome, type(exc).__name__)

    async def events(
        self,
        team: str,
        *,
        action: str | None = None,
        actor: str | None = None,
        outcome: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[AuditEvent], int]:
        """The team's events, newest first, filtered."""
        where: dict[str, Any] = {
            name: value
            for name, value in (("action", action), ("actor", actor), ("outcome", outcome))
            if value
        }
        window: dict[str, str] = {}
        if since:
            window["$gte"] = since
        if until:
            window["$lt"] = until
        if window:
            where["at"] = window
        docs = await self.store.find(
            AUDIT, team, where, sort=[("at", -1)], limit=limit, skip=offset
        )
        total = await self.store.count(AUDIT, team, where)
        return [AuditEvent.model_validate(d) for d in docs], total

    async def prune(self, *, batch: int = 500) -> int:
        """Delete every team's events older than the retention, at most ``batch`` of them (the
        supervisor calls this once an hour; the rest go next time); how many."""
        cutoff = iso(utcnow() - self.retention)
        removed = 0
        for doc in await self.store.scan_all_teams(AUDIT, {"at": {"$lt": cutoff}}, limit=batch):
            removed += await self.store.delete(AUDIT, doc["team_id"], doc["id"])
        return removed
