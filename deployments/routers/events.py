"""Events and webhooks: ``POST /v1/events``, ``/v1/hooks…`` (a signed call publishes for the
hook's team) and ``/v1/dead-letters…`` (events that kept failing: read, delete, replay).

Events go on the process's event bus (:meth:`linqra.system.System.bus`: on the cluster, the
cluster's bus), where EVENT_DRIVEN triggers pick them up.
"""

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path
from fastapi.responses import Response
from starlette.requests import Request

from deployments.deps import Limit, Offset, ResourceId, SystemDep, Team, page
from deployments.limits import NotJson, loads_strict
from deployments.schemas import ItemList, Page, RecordRoute
from linqra.errors import ValidationError
from linqra.events import DeadLetters
from linqra.events.models import DeadLetter
from linqra.scheduling.models import Hook, HookRequest, PublishedEvent, PublishRequest
from linqra.scheduling.triggers import HookService, publish_team_event

__all__ = ["router"]

router = APIRouter(tags=["events"], route_class=RecordRoute)
DeadLetterId = Annotated[str, Path(min_length=1, max_length=128)]
SIGNED_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/json": {"schema": {"type": "object", "additionalProperties": True}}
        },
        "description": "any JSON object, signed: `X-Linqra-Signature: sha256=<hex HMAC-SHA256"
        "(secret, raw body)>`",
    }
}


@router.post("/v1/events", status_code=202, response_model=PublishedEvent)
async def publish_event(system: SystemDep, team: Team, body: PublishRequest) -> dict[str, Any]:
    """Publish ``payload`` on the team's ``topic``; EVENT_DRIVEN triggers on it start tasks."""
    event = await publish_team_event(
        system.bus(), team.team_id, body.topic, body.payload, idempotency_key=body.idempotency_key
    )
    return {"id": event.id, "topic": body.topic, "published_at": event.published_at}


# -- webhooks ------------------------------------------------------------------------------
@router.post("/v1/hooks", status_code=201, response_model=Hook)
async def create_hook(system: SystemDep, team: Team, body: HookRequest) -> dict[str, Any]:
    """A webhook publishing to ``topic``; the answer holds the signing ``secret`` (only here)."""
    hook = await HookService(system.store).create(team.team_id, body.topic, body.description)
    return {**hook, "url": f"/v1/hooks/{hook['id']}"}


@router.get("/v1/hooks", response_model=ItemList[Hook], response_model_exclude_unset=True)
async def list_hooks(system: SystemDep, team: Team) -> dict[str, Any]:
    items = await HookService(system.store).list(team.team_id)
    return {"items": items, "total": len(items)}


@router.delete("/v1/hooks/{hook_id}", status_code=204, response_class=Response)
async def delete_hook(system: SystemDep, team: Team, hook_id: ResourceId) -> Response:
    await HookService(system.store).delete(team.team_id, hook_id)
    return Response(status_code=204)


@router.post(
    "/v1/hooks/{hook_id}", status_code=202, response_model=PublishedEvent, openapi_extra=SIGNED_BODY
)
async def call_hook(
    system: SystemDep,
    hook_id: ResourceId,
    request: Request,
    signature: Annotated[str | None, Header(alias="X-Linqra-Signature")] = None,
    idempotency_key: Annotated[
        str | None, Header(alias="X-Idempotency-Key", max_length=200)
    ] = None,
) -> dict[str, Any]:
    """Called by another system (no team header: the hook knows its team). The raw body must
    be signed: ``X-Linqra-Signature: sha256=<hex HMAC-SHA256(secret, body)>``."""
    body = await request.body()
    hooks = HookService(system.store)
    team_id, hook = await hooks.verify(hook_id, body, signature)
    try:  # as strictly as the edge decodes JSON, whatever the content type
        payload = loads_strict(body or b"{}")
    except NotJson:
        raise ValidationError("the webhook body is not JSON", field="body") from None
    key = idempotency_key or hashlib.sha256(body).hexdigest()
    event = await publish_team_event(
        system.bus(),
        team_id,
        hook["topic"],
        payload,
        idempotency_key=f"hook:{hook_id}:{key}",
        source="webhook",
    )
    await hooks.accepted(team_id, hook)
    return {"id": event.id, "topic": hook["topic"]}


# -- dead letters --------------------------------------------------------------------------
@router.get("/v1/dead-letters", response_model=Page[DeadLetter])
async def list_dead_letters(
    system: SystemDep, team: Team, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    """Events that failed ``agents.max_event_deliveries`` times, newest first."""
    items, total = await DeadLetters(system.store).list_dead_letters(team.team_id, limit, offset)
    return page(items, total, limit, offset)


@router.get("/v1/dead-letters/{dead_letter_id}", response_model=DeadLetter)
async def get_dead_letter(
    system: SystemDep, team: Team, dead_letter_id: DeadLetterId
) -> dict[str, Any]:
    return await DeadLetters(system.store).get(team.team_id, dead_letter_id)


@router.delete("/v1/dead-letters/{dead_letter_id}", status_code=204, response_class=Response)
async def delete_dead_letter(
    system: SystemDep, team: Team, dead_letter_id: DeadLetterId
) -> Response:
    await DeadLetters(system.store).delete(team.team_id, dead_letter_id)
    return Response(status_code=204)


@router.post(
    "/v1/dead-letters/{dead_letter_id}/replay", status_code=202, response_model=PublishedEvent
)
async def replay_dead_letter(
    system: SystemDep, team: Team, dead_letter_id: DeadLetterId
) -> dict[str, Any]:
    """Publish the event again on its topic (its triggers get a fresh set of attempts); a
    payload that was cut when it was recorded cannot be replayed (409 on ``payload``)."""
    event = await DeadLetters(system.store).replay(team.team_id, dead_letter_id, system.bus())
    return {
        "id": event.id,
        "topic": event.headers.get("topic", event.topic),
        "published_at": event.published_at,
    }
