"""Each team's own LLM provider keys, sealed at rest.

One ``team_secrets`` document per team and provider (``id`` ``<team>/<provider>``) holds the key
sealed under the master keyring (:mod:`linqra.secrets.keyring`) with the team and
``provider:<name>`` as associated data, plus what may be shown: the last four characters, the
key version and the times. :meth:`TeamSecrets.reveal` is for the LLM layer only (it is the
:class:`linqra.llm.base.TeamKeys` port); no API answer, record, log line or error carries a value.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from linqra.clock import iso
from linqra.config import LLMProviderConfig
from linqra.errors import Conflict, NotFound, ValidationError
from linqra.secrets.keyring import Keyring, associated_data
from linqra.secrets.models import MAX_SECRET_CHARS, MIN_SECRET_CHARS, RotationReport, SecretView
from linqra.secrets.sealed import SealedField, reseal
from linqra.store import DocumentStore

__all__ = ["PROVIDER_SECRETS", "TEAM_SECRETS", "TeamSecrets"]

log = logging.getLogger(__name__)

TEAM_SECRETS = "team_secrets"
PROVIDER_SECRETS = SealedField(TEAM_SECRETS, "sealed", lambda doc: _name(doc["provider"]))


def _name(provider: str) -> str:
    return f"provider:{provider}"


class TeamSecrets:
    """Put, list, delete and (internally) reveal a team's provider keys; re-seal them all.

    ``providers``: the configured LLM providers (``settings.llm.providers``); a key can be kept
    for any of them but ``kind: local`` ones, which take none. ``also_reseal``: other sealed
    fields :meth:`rotate_all` re-seals (the webhooks' signing secrets).
    """

    def __init__(
        self,
        store: DocumentStore,
        keyring: Keyring,
        providers: Mapping[str, LLMProviderConfig] | None = None,
        *,
        also_reseal: Sequence[SealedField] = (),
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.providers = dict(providers) if providers is not None else None
        self.also_reseal = tuple(also_reseal)

    async def put(self, team_id: str, provider: str, value: str) -> SecretView:
        """Keep ``value`` as the team's key for ``provider`` (replacing any), sealed."""
        self._check_provider(provider)
        value = _check_value(value)
        doc_id, now = _doc_id(team_id, provider), iso()
        sealed = self.keyring.seal(value, associated_data(team_id, _name(provider)))
        fields = {"sealed": sealed, "last4": value[-4:], "updated_at": now}
        for _ in range(3):  # insert, or replace what is there; a racing put of the same row wins
            existing = await self.store.get(TEAM_SECRETS, team_id, doc_id)
            if existing is None:
                doc = {"id": doc_id, "provider": provider, "created_at": now, **fields}
                try:
                    await self.store.insert(TEAM_SECRETS, team_id, doc)
                except Conflict:
                    continue
                break
            if await self.store.update(TEAM_SECRETS, team_id, doc_id, fields):
                doc = {**existing, **fields}
                break
        else:  # pragma: no cover - three lost races in a row
            raise Conflict(f"the {provider} key changed meanwhile; try again", field="provider")
        log.info("provider key set: team=%s provider=%s version=%s", team_id, provider, sealed["v"])
        return _view(doc)

    async def delete(self, team_id: str, provider: str) -> None:
        """Forget the team's key for ``provider`` (404 when it had none)."""
        self._check_provider(provider)
        if not await self.store.delete(TEAM_SECRETS, team_id, _doc_id(team_id, provider)):
            raise NotFound(f"team has no {provider} key", field="provider")
        log.info("provider key deleted: team=%s provider=%s", team_id, provider)

    async def list(self, team_id: str) -> list[SecretView]:
        """The team's keys, masked, by provider."""
        docs = await self.store.find(TEAM_SECRETS, team_id, sort=[("provider", 1)], limit=1000)
        return [_view(d) for d in docs]

    async def key_providers(self, team_id: str) -> set[str]:
        """The providers the team has a key for, none opened (for the model list)."""
        return {view.provider for view in await self.list(team_id)}

    async def reveal(self, team_id: str, provider: str) -> str | None:
        """The team's key for ``provider``, or ``None``: for the LLM layer, never for an answer.
        A stored key that does not open raises :class:`~linqra.secrets.keyring.SealError`."""
        doc = await self.store.get(TEAM_SECRETS, team_id, _doc_id(team_id, provider))
        if doc is None:
            return None
        return self.keyring.open(doc["sealed"], associated_data(team_id, _name(provider)))

    async def rotate_all(self) -> RotationReport:
        """Re-seal every provider key of every team (and ``also_reseal``: the webhook secrets)
        with the newest master key; rows that do not open are counted and left alone."""
        mine = await reseal(self.store, self.keyring, PROVIDER_SECRETS)
        others = [await reseal(self.store, self.keyring, spec) for spec in self.also_reseal]
        report = RotationReport(
            key_version=self.keyring.version,
            secrets=mine.resealed,
            hooks=sum(c.resealed for c in others),
            failed=mine.failed + sum(c.failed for c in others),
        )
        log.info(
            "re-sealed with master key version %s: %s provider keys, %s webhook secrets, %s failed",
            report.key_version,
            report.secrets,
            report.hooks,
            report.failed,
        )
        return report

    def _check_provider(self, provider: str) -> None:
        if self.providers is None:
            return
        cfg = self.providers.get(provider)
        if cfg is None:
            known = ", ".join(sorted(p for p, c in self.providers.items() if c.kind != "local"))
            raise ValidationError(
                f"unknown provider {provider[:80]!r}; configured providers: {known}",
                field="provider",
            )
        if cfg.kind == "local":
            raise ValidationError(f"provider {provider!r} takes no API key", field="provider")


def _check_value(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError("value must be a string", field="value")
    text = value.strip()
    if not MIN_SECRET_CHARS <= len(text) <= MAX_SECRET_CHARS:
        raise ValidationError(
            f"value must be {MIN_SECRET_CHARS}-{MAX_SECRET_CHARS} characters long", field="value"
        )
    if not all("!" <= c <= "~" for c in text):
        raise ValidationError(
            "value must be printable ASCII without spaces or line breaks", field="value"
        )
    return text


def _doc_id(team_id: str, provider: str) -> str:
    return f"{team_id}/{provider}"


def _view(doc: Mapping[str, Any]) -> SecretView:  # every field by name: nothing else shows
    return SecretView(
        provider=doc["provider"],
        last4=doc["last4"],
        key_version=doc["sealed"]["v"],
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )
