"""One ``APIRouter`` per area of the API; :func:`deployments.app.create_app` mounts them all."""

from deployments.routers import (
    access,
    agents,
    alerts,
    analytics,
    assistants,
    chat,
    events,
    executions,
    health,
    knowledge,
    langgraph,
    linq,
    llm,
    secrets,
    widget,
    workflows,
)

__all__ = ["ROUTERS"]

ROUTERS = (
    health.router,
    access.router,
    workflows.router,
    executions.router,
    llm.router,
    knowledge.router,
    agents.router,
    agents.scheduling,
    assistants.router,
    chat.router,
    widget.router,
    langgraph.router,
    events.router,
    linq.router,
    secrets.router,
    analytics.router,
    alerts.router,
)
