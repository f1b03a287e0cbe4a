"""Events and webhooks: ``POST /v1/events``, ``/v1/hooks…`` (a signed call publishes for the
hook's team) and ``/v1/dead-letters…`` (events that kept failing: read, delete, replay).

Events go on the process's event bus (:meth:`linqra.system.System.bus`: on the cluster, the
cluster's bus), where EVENT_DRIVEN triggers pick them up.
"""

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path
from fastapi.responses import Response
from starlette.requests import Request

from deployments.auth import PUBLIC, Admin, Member, Require, Runner, Viewer, client_ip
from deployments.deps import Limit, Offset, ResourceId, SystemDep, page
from deployments.limits import NotJson, loads_strict
from deployments.schemas import ItemList, Page, RecordRoute
from linqra.auth.principal import Permission, Principal
from linqra.errors import NotFound, Unauthenticated, ValidationError
from linqra.events import DeadLetters
from linqra.events.models import DeadLetter
from linqra.scheduling.hooks import SIGNATURE_HEADER, TIMESTAMP_HEADER
from linqra.scheduling.models import Hook, HookRequest, PublishedEvent, PublishRequest
from linqra.scheduling.triggers import publish_team_event
from linqra.system import System

__all__ = ["router"]

CreateHook = Annotated[Principal, Depends(Require(Permission.ADMIN, "hook.create"))]
DeleteHook = Annotated[Principal, Depends(Require(Permission.ADMIN, "hook.delete"))]

router = APIRouter(tags=["events"], route_class=RecordRoute)
DeadLetterId = Annotated[str, Path(min_length=1, max_length=128)]
SIGNED_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/json": {"schema": {"type": "object", "additionalProperties": True}}
        },
        "description": "any JSON object, signed when it is sent: `X-Linqra-Timestamp: <unix "
        'seconds>` and `X-Linqra-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw '
        'body>")>`',
    }
}


@router.post("/v1/events", status_code=202, response_model=PublishedEvent)
async def publish_event(system: SystemDep, team: Runner, body: PublishRequest) -> dict[str, Any]:
    """Publish ``payload`` on the team's ``topic``; EVENT_DRIVEN triggers on it start tasks."""
    event = await publish_team_event(
        system.bus(), team.team_id, body.topic, body.payload, idempotency_key=body.idempotency_key
    )
    return {"id": event.id, "topic": body.topic, "published_at": event.published_at}


# -- webhooks ------------------------------------------------------------------------------
@router.post("/v1/hooks", status_code=201, response_model=Hook)
async def create_hook(system: SystemDep, team: CreateHook, body: HookRequest) -> dict[str, Any]:
    """A webhook publishing to ``topic``; the answer holds the signing ``secret`` (only here)."""
    hook = await system.hooks.create(team.team_id, body.topic, body.description)
    return {**hook, "url": f"/v1/hooks/{hook['id']}"}


@router.get("/v1/hooks", response_model=ItemList[Hook], response_model_exclude_unset=True)
async def list_hooks(system: SystemDep, team: Admin) -> dict[str, Any]:
    items = await system.hooks.list(team.team_id)
    return {"items": items, "total": len(items)}


@router.delete("/v1/hooks/{hook_id}", status_code=204, response_class=Response)
async def delete_hook(system: SystemDep, team: DeleteHook, hook_id: ResourceId) -> Response:
    await system.hooks.delete(team.team_id, hook_id)
    return Response(status_code=204)


async def verify_limited(
    system: System, request: Request, hook_id: str, body: bytes, *signed: str | None
) -> Any:
    """The hook's check, under the failed-sign-in limit of the caller's address: a hook id is
    in other systems' configs, and a refused call must not be free to repeat."""
    limits = system.settings.rate_limits.enabled
    ip = client_ip(request.scope, system.settings.auth.trusted_proxies) or "unknown"
    if limits:
        (await system.limiter.peek(system.rate_limits.failed_auth, ip)).raise_if_denied()
    try:
        return await system.hooks.verify(hook_id, body, *signed)
    except (Unauthenticated, NotFound):
        if limits:
            await system.limiter.hit(system.rate_limits.failed_auth, ip)
        raise


@router.post(
    "/v1/hooks/{hook_id}",
    dependencies=[PUBLIC],
    status_code=202,
    response_model=PublishedEvent,
    openapi_extra=SIGNED_BODY,
)
async def call_hook(
    system: SystemDep,
    hook_id: ResourceId,
    request: Request,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
    timestamp: Annotated[str | None, Header(alias=TIMESTAMP_HEADER)] = None,
    idempotency_key: Annotated[
        str | None, Header(alias="X-Idempotency-Key", max_length=200)
    ] = None,
) -> dict[str, Any]:
    """Called by another system (no team header: the hook knows its team). Each delivery is
    signed when it is sent: ``X-Linqra-Timestamp: <unix seconds>`` and ``X-Linqra-Signature:
    v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>``; a stale timestamp (past
    ``agents.webhook_tolerance_seconds``) or a signature already used is refused with 401."""
    body = await request.body()
    call = await verify_limited(system, request, hook_id, body, signature, timestamp)
    try:
        try:  # as strictly as the edge decodes JSON, whatever the content type
            payload = loads_strict(body or b"{}")
        except NotJson:
            raise ValidationError("the webhook body is not JSON", field="body") from None
        key = idempotency_key or hashlib.sha256(body).hexdigest()
        event = await publish_team_event(
            system.bus(),
            call.team_id,
            call.hook["topic"],
            payload,
            idempotency_key=f"hook:{hook_id}:{key}",
            source="webhook",
        )
    except BaseException:  # not published: the sender may deliver the same signed call again
        await system.hooks.forget(call)
        raise
    await system.hooks.accepted(call)
    return {"id": event.id, "topic": call.hook["topic"]}


# -- dead letters --------------------------------------------------------------------------
@router.get("/v1/dead-letters", response_model=Page[DeadLetter])
async def list_dead_letters(
    system: SystemDep, team: Viewer, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    """Events that failed ``agents.max_event_deliveries`` times, newest first."""
    items, total = await DeadLetters(system.store).list_dead_letters(team.team_id, limit, offset)
    return page(items, total, limit, offset)


@router.get("/v1/dead-letters/{dead_letter_id}", response_model=DeadLetter)
async def get_dead_letter(
    system: SystemDep, team: Viewer, dead_letter_id: DeadLetterId
) -> dict[str, Any]:
    return await DeadLetters(system.store).get(team.team_id, dead_letter_id)


@router.delete("/v1/dead-letters/{dead_letter_id}", status_code=204, response_class=Response)
async def delete_dead_letter(
    system: SystemDep, team: Member, dead_letter_id: DeadLetterId
) -> Response:
    await DeadLetters(system.store).delete(team.team_id, dead_letter_id)
    return Response(status_code=204)


@router.post(
    "/v1/dead-letters/{dead_letter_id}/replay", status_code=202, response_model=PublishedEvent
)
async def replay_dead_letter(
    system: SystemDep, team: Runner, dead_letter_id: DeadLetterId
) -> dict[str, Any]:
    """Publish the event again on its topic (its triggers get a fresh set of attempts); a
    payload that was cut when it was recorded cannot be replayed (409 on ``payload``)."""
    event = await DeadLetters(system.store).replay(team.team_id, dead_letter_id, system.bus())
    return {
        "id": event.id,
        "topic": event.headers.get("topic", event.topic),
        "published_at": event.published_at,
    }
