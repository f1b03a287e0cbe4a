"""Alerts: ``/v1/alerts/rules…`` (rules, their history, deliveries and a dry run),
``/v1/alerts/firing``, ``/v1/alerts/signals`` and ``/v1/alerts/secrets…`` (the named keys that
sign webhook channels).

Admins write rules and secrets; any member of the team reads. The evaluator runs apart (on a
cluster ``actors/alerts.py``; see :mod:`linqra.alerts`). ``docs/alerts.md`` has examples.
"""

import weakref
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from deployments.auth import Admin, Require, Viewer
from deployments.deps import IfMatch, JsonObject, Limit, Offset, ResourceId, SystemDep, page
from deployments.schemas import ItemList, Page, RecordRoute, body_schema
from linqra.alerts import AlertRules, rules_of
from linqra.alerts.models import (
    AlertDelivery,
    AlertEvent,
    AlertRule,
    AlertRuleInput,
    AlertSecretInput,
    AlertSecretView,
    Evaluation,
    FiringAlert,
    SignalInfo,
)
from linqra.auth.principal import Permission, Principal
from linqra.system import System

__all__ = ["router"]

router = APIRouter(prefix="/v1/alerts", tags=["alerts"], route_class=RecordRoute)
_SERVICES: "weakref.WeakKeyDictionary[System, AlertRules]" = weakref.WeakKeyDictionary()
RULE_BODY = body_schema(AlertRuleInput)

CreateRule = Annotated[Principal, Depends(Require(Permission.ADMIN, "alert_rule.create"))]
UpdateRule = Annotated[Principal, Depends(Require(Permission.ADMIN, "alert_rule.update"))]
DeleteRule = Annotated[Principal, Depends(Require(Permission.ADMIN, "alert_rule.delete"))]
SetSecret = Annotated[Principal, Depends(Require(Permission.ADMIN, "alert_secret.set"))]
DeleteSecret = Annotated[Principal, Depends(Require(Permission.ADMIN, "alert_secret.delete"))]
SecretName = Annotated[
    str, Path(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9_-]*$", description="name")
]
DeliveryStatus = Annotated[
    Literal["pending", "retrying", "delivered", "failed", "superseded"] | None,
    Query(description="only deliveries in this status"),
]


def alerts(system: System) -> AlertRules:
    """The process's alert rules service (one per System: its indexes are ensured once)."""
    service = _SERVICES.get(system)
    if service is None:
        service = _SERVICES[system] = rules_of(system)
    return service


@router.get("/signals", response_model=ItemList[SignalInfo])
async def list_signals(team: Viewer) -> dict[str, Any]:
    """What a rule can watch, with each signal's parameters."""
    items = AlertRules.signals()
    return {"items": items, "total": len(items)}


@router.post("/rules", status_code=201, response_model=AlertRule, openapi_extra=RULE_BODY)
async def create_rule(system: SystemDep, team: CreateRule, body: JsonObject) -> AlertRule:
    """A rule of the team, evaluated from the evaluator's next tick (400 naming the field for
    an unknown signal or parameter, a bad threshold, window or duration, an unknown channel
    type, a webhook URL that is not http(s), an unknown secret)."""
    return await alerts(system).create(team.team_id, body)


@router.get("/rules", response_model=Page[AlertRule])
async def list_rules(
    system: SystemDep,
    team: Viewer,
    enabled: Annotated[bool | None, Query(description="only enabled (or disabled) rules")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """The team's rules with their current state, newest first."""
    items, total = await alerts(system).page(
        team.team_id, enabled=enabled, limit=limit, offset=offset
    )
    return page(items, total, limit, offset)


@router.get("/rules/{rule_id}", response_model=AlertRule)
async def get_rule(system: SystemDep, team: Viewer, rule_id: ResourceId) -> AlertRule:
    return await alerts(system).get(team.team_id, rule_id)


@router.put("/rules/{rule_id}", response_model=AlertRule, openapi_extra=RULE_BODY)
async def update_rule(
    system: SystemDep, team: UpdateRule, rule_id: ResourceId, body: JsonObject, expected: IfMatch
) -> AlertRule:
    """Replace the rule's definition (its state and history stay); with ``If-Match:
    <version>`` only if that is still its version (409)."""
    return await alerts(system).update(team.team_id, rule_id, body, expected_version=expected)


@router.delete("/rules/{rule_id}", status_code=204, response_class=Response)
async def delete_rule(system: SystemDep, team: DeleteRule, rule_id: ResourceId) -> Response:
    """Delete the rule; if it was firing, the evaluator resolves it (``reason: deleted``)."""
    await alerts(system).delete(team.team_id, rule_id)
    return Response(status_code=204)


@router.get("/rules/{rule_id}/history", response_model=Page[AlertEvent])
async def rule_history(
    system: SystemDep, team: Viewer, rule_id: ResourceId, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    """The rule's firing and resolved events, newest first."""
    items, total = await alerts(system).history(team.team_id, rule_id, limit=limit, offset=offset)
    return page(items, total, limit, offset)


@router.get("/rules/{rule_id}/deliveries", response_model=Page[AlertDelivery])
async def rule_deliveries(
    system: SystemDep,
    team: Viewer,
    rule_id: ResourceId,
    status: DeliveryStatus = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Each notification of the rule to each channel, newest first: attempts, status and the
    last error of a failing channel."""
    items, total = await alerts(system).deliveries(
        team.team_id, rule_id, status=status, limit=limit, offset=offset
    )
    return page(items, total, limit, offset)


@router.post("/rules/{rule_id}/evaluate", response_model=Evaluation)
async def evaluate_rule(system: SystemDep, team: Viewer, rule_id: ResourceId) -> Evaluation:
    """A dry run: the rule's signal now and the state an evaluation would move it to. Nothing
    is recorded or sent."""
    return await alerts(system).evaluate(team.team_id, rule_id)


@router.get("/firing", response_model=ItemList[FiringAlert])
async def firing_alerts(system: SystemDep, team: Viewer) -> dict[str, Any]:
    """The team's alerts firing now, the longest-firing first."""
    items = await alerts(system).firing(team.team_id)
    return {"items": items, "total": len(items)}


# -- secrets -------------------------------------------------------------------------------
@router.put("/secrets/{name}", response_model=AlertSecretView)
async def put_secret(
    system: SystemDep, team: SetSecret, name: SecretName, body: AlertSecretInput
) -> AlertSecretView:
    """Keep a signing key under ``name`` (replacing any); webhook channels name it. The answer
    shows only its last four characters."""
    return await alerts(system).secrets.put(team.team_id, name, body.value)


@router.get("/secrets", response_model=ItemList[AlertSecretView])
async def list_secrets(system: SystemDep, team: Admin) -> dict[str, Any]:
    """The team's alert secrets, masked."""
    items = await alerts(system).secrets.list(team.team_id)
    return {"items": items, "total": len(items)}


@router.delete("/secrets/{name}", status_code=204, response_class=Response)
async def delete_secret(system: SystemDep, team: DeleteSecret, name: SecretName) -> Response:
    """Forget the secret (404 if there is none; 409 while a rule's channel names it)."""
    await alerts(system).delete_secret(team.team_id, name)
    return Response(status_code=204)
