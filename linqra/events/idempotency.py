"""Run a handler once per idempotency key, also when its event is delivered again.

``claim`` records the key as PROCESSING (an insert: two consumers cannot both win it) and says
whether this delivery should run; ``done`` marks it DONE. A redelivered event whose key is DONE
is skipped; one whose claim went stale (the consumer died mid-way) is claimed again, so a crash
never loses the event and a success never runs twice.
"""

from __future__ import annotations

from datetime import timedelta

from linqra.clock import iso, utcnow
from linqra.errors import Conflict
from linqra.store import DocumentStore

__all__ = ["PROCESSED_EVENTS", "ProcessedEvents"]

PROCESSED_EVENTS = "processed_events"


class ProcessedEvents:
    def __init__(self, store: DocumentStore, *, stale_after_seconds: float = 300.0) -> None:
        self.store = store
        self.stale_after = stale_after_seconds

    async def claim(self, team_id: str, key: str, owner: str) -> bool:
        now = iso()
        try:
            await self.store.insert(
                PROCESSED_EVENTS, team_id,
                {"id": key, "status": "PROCESSING", "owner": owner, "claimed_at": now},
            )  # fmt: skip
            return True
        except Conflict:
            pass
        stale = iso(utcnow() - timedelta(seconds=self.stale_after))
        # a claim left by a consumer that died: take it over (compare-and-set on its timestamp)
        return await self.store.update(
            PROCESSED_EVENTS, team_id, key, {"owner": owner, "claimed_at": now},
            where={"status": "PROCESSING", "claimed_at": {"$lt": stale}},
        )  # fmt: skip

    async def done(self, team_id: str, key: str, result: str | None = None) -> None:
        await self.store.update(
            PROCESSED_EVENTS, team_id, key, {"status": "DONE", "done_at": iso(), "result": result}
        )

    async def release(self, team_id: str, key: str) -> None:
        """The handler failed: let the next delivery try again."""
        await self.store.delete(PROCESSED_EVENTS, team_id, key)
