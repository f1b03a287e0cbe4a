"""The team's alert secrets: named signing keys for webhook channels, sealed at rest.

They are team secrets (:class:`linqra.secrets.TeamSecrets`, collection ``team_secrets``) under
the name ``alert:<name>`` — sealed under the master keyring with the team and that name as
associated data, listed masked among the team's secrets (``GET /v1/secrets``), re-sealed by
``linqra secrets rotate``. No LLM provider can be named ``alert:…`` (``:`` separates a provider
from its model), so a provider's key is never one of them. A rule names its secret; only
:meth:`AlertSecrets.reveal`, at delivery time, reads the value — it is never written to a rule,
an event, a delivery record or a log line.
"""

from __future__ import annotations

import re

from linqra.alerts.models import AlertSecretView
from linqra.errors import NotFound, ValidationError
from linqra.secrets import Keyring, SecretView, TeamSecrets
from linqra.store import DocumentStore

__all__ = ["PREFIX", "AlertSecrets", "check_secret_name"]

PREFIX = "alert:"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def check_secret_name(name: object, field: str = "name") -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError(
            "a secret name is 1-63 lowercase letters, digits, '_' or '-', starting with a "
            "letter or digit",
            field=field,
        )
    return name


def _view(secret: SecretView) -> AlertSecretView:
    return AlertSecretView(
        name=secret.provider.removeprefix(PREFIX),
        last4=secret.last4,
        key_version=secret.key_version,
        created_at=secret.created_at,
        updated_at=secret.updated_at,
    )


class AlertSecrets:
    def __init__(self, store: DocumentStore, keyring: Keyring) -> None:
        self._secrets = TeamSecrets(store, keyring)  # no provider list: names are ours

    async def put(self, team_id: str, name: str, value: str) -> AlertSecretView:
        return _view(await self._secrets.put(team_id, PREFIX + check_secret_name(name), value))

    async def list(self, team_id: str) -> list[AlertSecretView]:
        return [
            _view(s) for s in await self._secrets.list(team_id) if s.provider.startswith(PREFIX)
        ]

    async def exists(self, team_id: str, name: str) -> bool:
        names = {s.name for s in await self.list(team_id)}
        return name in names

    async def delete(self, team_id: str, name: str) -> None:
        try:
            await self._secrets.delete(team_id, PREFIX + check_secret_name(name))
        except NotFound:
            raise NotFound(f"team has no alert secret {name!r}", field="name") from None

    async def reveal(self, team_id: str, name: str) -> str | None:
        """The value, for signing a delivery only."""
        return await self._secrets.reveal(team_id, PREFIX + name)
