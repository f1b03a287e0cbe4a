"""The team's own LLM provider keys: ``PUT``/``DELETE /v1/secrets/{provider}``, ``GET
/v1/secrets``. A key goes in once and never comes out: every answer shows its last four
characters, the master key version it is sealed with and when it was set (see
:mod:`linqra.secrets`). Admins only; setting and deleting are audited."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response

from deployments.auth import Admin, Require
from deployments.deps import SystemDep
from deployments.schemas import ItemList, RecordRoute
from linqra.auth.principal import Permission, Principal
from linqra.secrets import SecretInput, SecretView

__all__ = ["router"]

router = APIRouter(tags=["secrets"], route_class=RecordRoute)

SetSecret = Annotated[Principal, Depends(Require(Permission.ADMIN, "secret.set"))]
DeleteSecret = Annotated[Principal, Depends(Require(Permission.ADMIN, "secret.delete"))]
ProviderName = Annotated[
    str, Path(min_length=1, max_length=64, description="a configured LLM provider")
]


@router.put("/v1/secrets/{provider}", response_model=SecretView)
async def put_secret(
    system: SystemDep, team: SetSecret, provider: ProviderName, body: SecretInput
) -> SecretView:
    """Keep the team's API key for ``provider`` (replacing any); its calls to that provider use
    it instead of the global key. The answer shows only its last four characters."""
    return await system.secrets.put(team.team_id, provider, body.value)


@router.get("/v1/secrets", response_model=ItemList[SecretView])
async def list_secrets(system: SystemDep, team: Admin) -> dict[str, Any]:
    """The team's provider keys, masked."""
    items = await system.secrets.list(team.team_id)
    return {"items": items, "total": len(items)}


@router.delete("/v1/secrets/{provider}", status_code=204, response_class=Response)
async def delete_secret(system: SystemDep, team: DeleteSecret, provider: ProviderName) -> Response:
    """Forget the team's key for ``provider`` (its calls use the global key again); 404 when it
    had none."""
    await system.secrets.delete(team.team_id, provider)
    return Response(status_code=204)
