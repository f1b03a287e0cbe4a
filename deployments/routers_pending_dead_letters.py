"""Dead letters over HTTP: a team reads, deletes and replays the events that kept failing.

Pending mount (the gateway is being split into routers)::

    app.include_router(dead_letters_router(team_context, get_dead_letters, get_bus))

``team`` is the gateway's team dependency (a :class:`~linqra.tenancy.TeamContext`),
``dead_letters`` a dependency giving ``DeadLetters(system.store)`` and ``bus`` one giving the
cluster's event bus (``actors.events.open_bus(settings)``, the one ``POST /v1/events`` uses).

| | |
| --- | --- |
| ``GET /v1/dead-letters?limit&offset`` | the team's dead letters, newest first |
| ``GET /v1/dead-letters/{id}`` | one (404 for another team's) |
| ``DELETE /v1/dead-letters/{id}`` | forget it → 204 |
| ``POST /v1/dead-letters/{id}/replay`` | publish it again on its topic → 202 ``{id, topic, published_at}`` |
"""

# no ``from __future__ import annotations``: FastAPI reads the dependencies declared inside
# dead_letters_router from the live annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from linqra.events import DeadLetters, EventBus
from linqra.tenancy import TeamContext

__all__ = ["dead_letters_router"]

DeadLetterId = Annotated[str, Path(min_length=1, max_length=128)]


def dead_letters_router(
    team: Callable[..., Any],
    dead_letters: Callable[..., Any],
    bus: Callable[..., Any],
) -> APIRouter:
    """The ``/v1/dead-letters`` routes, given the three dependencies (see the module)."""
    router = APIRouter(prefix="/v1/dead-letters", tags=["events"])
    Team = Annotated[TeamContext, Depends(team)]
    Letters = Annotated[DeadLetters, Depends(dead_letters)]
    Bus = Annotated[EventBus, Depends(bus)]

    @router.get("")
    async def list_dead_letters(
        team: Team,
        letters: Letters,
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> dict[str, Any]:
        """Events that failed ``agents.max_event_deliveries`` times, newest first."""
        items, total = await letters.list_dead_letters(team.team_id, limit, offset)
        return {
            "items": items,
            "total": total,
            "limit": limit,
            "offset": offset,
            "next_offset": offset + limit if offset + limit < total else None,
        }

    @router.get("/{dead_letter_id}")
    async def get_dead_letter(
        team: Team, letters: Letters, dead_letter_id: DeadLetterId
    ) -> dict[str, Any]:
        return await letters.get(team.team_id, dead_letter_id)

    @router.delete("/{dead_letter_id}", status_code=204)
    async def delete_dead_letter(
        team: Team, letters: Letters, dead_letter_id: DeadLetterId
    ) -> Response:
        await letters.delete(team.team_id, dead_letter_id)
        return Response(status_code=204)

    @router.post("/{dead_letter_id}/replay", status_code=202)
    async def replay_dead_letter(
        team: Team, letters: Letters, events: Bus, dead_letter_id: DeadLetterId
    ) -> dict[str, Any]:
        """Publish the event again on its topic (its triggers get a fresh set of attempts); a
        payload that was cut when it was recorded cannot be replayed (409 on ``payload``)."""
        event = await letters.replay(team.team_id, dead_letter_id, events)
        return {
            "id": event.id,
            "topic": event.headers.get("topic", event.topic),
            "published_at": event.published_at,
        }

    return router
