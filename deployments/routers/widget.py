"""What a public widget key may learn and where its assistant may answer.

``GET /v1/widget`` tells the embeddable chat widget (``console/widget``) which assistant its key
is bound to and how to look (the assistant's ``widgetConfig``), so a page needs only the key.
:func:`public_assistant` is the check every widget chat passes: the bound assistant must be
``accessControl.type = PUBLIC``, and — when its ``accessControl.allowedDomains`` lists any — the
page's ``Origin`` must be one of them (on top of the key's own ``allowed_origins``, which the
authenticator checks first).
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from deployments.auth import Require
from deployments.deps import SystemDep
from deployments.schemas import RecordRoute
from linqra.assistants.models import Assistant, WidgetConfig
from linqra.auth.principal import Permission, Principal
from linqra.errors import Forbidden
from linqra.system import System

__all__ = ["WidgetInfo", "public_assistant", "router"]

router = APIRouter(tags=["chat"], route_class=RecordRoute)
WidgetCaller = Annotated[Principal, Depends(Require(Permission.READ, widget=True))]


class WidgetInfo(BaseModel):
    """What the widget shows before the first message."""

    assistantId: str
    name: str
    widgetConfig: WidgetConfig


async def public_assistant(
    system: System, team: Principal, request: Request, assistant_id: str
) -> Assistant:
    """The assistant a widget key's page may chat with (see the module docstring); 403 naming
    ``accessControl`` otherwise."""
    assistant = await system.assistants.get(team.team_id, assistant_id)
    access = assistant.accessControl
    if access.type != "PUBLIC":
        raise Forbidden(
            f"assistant {assistant_id!r} is PRIVATE: set accessControl.type to PUBLIC to "
            "answer on web pages",
            field="accessControl.type",
        )
    origin = request.headers.get("origin", "")
    if access.allowedDomains and origin.lower() not in {d.lower() for d in access.allowedDomains}:
        raise Forbidden(
            f"origin {origin or '(none)'!r} is not in the assistant's accessControl.allowedDomains",
            field="accessControl.allowedDomains",
        )
    return assistant


@router.get("/v1/widget", response_model=WidgetInfo)
async def widget(request: Request, system: SystemDep, team: WidgetCaller) -> WidgetInfo:
    """For a public widget key only: its assistant's id, name and ``widgetConfig``."""
    if team.source != "widget" or team.resource is None:
        raise Forbidden("only a public widget key (lq_pub_…) has a widget")
    assistant = await public_assistant(system, team, request, team.resource)
    return WidgetInfo(
        assistantId=assistant.id, name=assistant.name, widgetConfig=assistant.widgetConfig
    )
