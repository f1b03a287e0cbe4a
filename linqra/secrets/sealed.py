"""Fields of stored documents that hold a sealed value, and re-sealing them with the newest key.

Every collection that keeps a secret names it once as a :class:`SealedField`; ``linqra secrets
rotate`` walks each (the one maintenance use of ``scan_all_teams`` here) and re-seals what is not
yet sealed with the keyring's newest key, by compare-and-set on the old nonce so that a value
written meanwhile is never overwritten with an older one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from linqra.secrets.keyring import Keyring, SealError, associated_data
from linqra.store import DocumentStore

__all__ = ["ResealCount", "SealedField", "reseal"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SealedField:
    """Documents of ``collection`` keep a sealed value in ``field``; ``name(doc)`` is the row's
    name in the associated data. ``plaintext``: a field of documents written before sealing,
    which re-sealing seals and then clears (``None``)."""

    collection: str
    field: str
    name: Callable[[Mapping[str, Any]], str]
    plaintext: str | None = None


@dataclass(frozen=True, slots=True)
class ResealCount:
    resealed: int
    failed: int


async def reseal(
    store: DocumentStore, keyring: Keyring, spec: SealedField, *, batch: int = 200
) -> ResealCount:
    """Re-seal every document of ``spec`` not sealed with ``keyring.version``. A value that does
    not open is counted in ``failed``, logged by row (never by content) and left as it is."""
    stale = {f"{spec.field}.v": {"$ne": keyring.version}}
    failed: set[tuple[str, str]] = set()
    resealed = 0
    while True:
        docs = await store.scan_all_teams(spec.collection, stale, limit=batch + len(failed))
        todo = [d for d in docs if (d["team_id"], d["id"]) not in failed]
        if not todo:
            return ResealCount(resealed, len(failed))
        for doc in todo:
            team_id, doc_id = doc["team_id"], doc["id"]
            aad = associated_data(team_id, spec.name(doc))
            sealed = doc.get(spec.field)
            try:
                plain = _plaintext(keyring, spec, doc, sealed, aad)
            except SealError as exc:
                failed.add((team_id, doc_id))
                log.warning(
                    "not re-sealed: %s %s of team %s: %s", spec.collection, doc_id, team_id, exc
                )
                continue
            changes: dict[str, Any] = {spec.field: keyring.seal(plain, aad)}
            if spec.plaintext is not None:
                changes[spec.plaintext] = None
            where = {f"{spec.field}.nonce": sealed["nonce"]} if sealed else {spec.field: None}
            if await store.update(spec.collection, team_id, doc_id, changes, where=where):
                resealed += 1
            # else it changed meanwhile (written anew, or deleted): the next batch sees it again


def _plaintext(
    keyring: Keyring,
    spec: SealedField,
    doc: Mapping[str, Any],
    sealed: Any,
    aad: bytes,
) -> str:
    if isinstance(sealed, Mapping):
        return keyring.open(sealed, aad)
    legacy = doc.get(spec.plaintext) if spec.plaintext else None
    if isinstance(legacy, str) and legacy:
        return legacy
    raise SealError(f"no sealed value in {spec.field}")
