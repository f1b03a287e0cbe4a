"""The document store port.

A document is a JSON-compatible ``dict`` with a string ``id``. The store adds
``team_id`` to every document it writes and filters on it in every read, so
no call can reach another team's records: each method takes the team as a
required argument and refuses an empty one. The one cross-team read,
:meth:`DocumentStore.scan_all_teams`, exists for maintenance (the execution
reaper) and is named so that it stands out in review.

Filters are a subset of MongoDB's query language, the same in every adapter:

* ``{"field": value}`` — equality (``None`` matches a missing or null field);
* ``{"field": {"$in": [...]}}``, ``{"$nin": [...]}``, ``{"$ne": v}``;
* ``{"field": {"$gt" | "$gte" | "$lt" | "$lte": v}}`` on numbers or ISO-8601 text;
* ``field`` may be a dotted path into nested objects (``"a.b"``).

Several fields in one filter are ANDed. Sorting is a list of ``(field, 1 | -1)``.
:meth:`DocumentStore.aggregate` groups and measures documents in the database (SQL, a MongoDB
pipeline) for analytics; its small typed query is :mod:`linqra.store.aggregation`.
Duplicates: :meth:`insert` of an existing ``id``, or one that breaks a unique
index, raises :class:`linqra.errors.Conflict` and writes nothing.

Availability: every call ends within the store's ``timeout_seconds`` (the
``store_timeout_seconds`` setting). A store that cannot answer in time, or whose
server is down, raises :class:`linqra.errors.StoreError` (HTTP 503) — never hangs,
never leaks a connection string. A write that raised ``StoreError`` may or may
not have been applied (as with any database whose answer was lost), but it is
never applied in part. :meth:`DocumentStore.check` is the health probe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from linqra.errors import StoreError, ValidationError

if TYPE_CHECKING:
    from linqra.store.aggregation import Aggregation, Groups

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT_SECONDS",
    "DEFAULT_TIMEOUT_SECONDS",
    "OPERATORS",
    "Document",
    "DocumentStore",
    "Filter",
    "IndexSpec",
    "Sort",
    "check_collection",
    "check_filter",
    "require_team",
    "unavailable",
]

Document = dict[str, Any]
Filter = Mapping[str, Any]
Sort = Sequence[tuple[str, int]]

DEFAULT_TIMEOUT_SECONDS = 10.0
"""How long one store call may take before it raises :class:`StoreError`."""
DEFAULT_CONNECT_TIMEOUT_SECONDS = 3.0
"""How long finding a server may take (MongoDB server selection, Redis connect)."""
RETRY_AFTER_SECONDS = 2.0
"""The retry hint an outage error carries (``Retry-After`` on the 503)."""

OPERATORS = frozenset({"$in", "$nin", "$ne", "$gt", "$gte", "$lt", "$lte"})
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """An index on ``fields`` of ``collection``; the store prefixes ``team_id``."""

    collection: str
    fields: tuple[str, ...]
    unique: bool = False
    name: str = field(default="")

    def index_name(self) -> str:
        return (
            self.name
            or f"ix_{self.collection}_{'_'.join(f.replace('.', '_') for f in self.fields)}"
        )


@runtime_checkable
class DocumentStore(Protocol):
    """Team-scoped JSON documents in named collections."""

    async def ensure_indexes(self, specs: Sequence[IndexSpec]) -> None:
        """Create the collections and indexes if missing; idempotent, safe at every start-up."""

    async def insert(self, collection: str, team_id: str, doc: Document) -> None:
        """Insert ``doc`` (which must carry ``id``) for ``team_id``; :class:`Conflict` on a duplicate."""

    async def put_many(
        self,
        collection: str,
        team_id: str,
        docs: Sequence[Document],
        *,
        where: Filter | None = None,
    ) -> list[str]:
        """Write each of ``docs`` (each carries ``id``) whole for ``team_id`` — inserted, or over
        the team's document with that id — in one round trip. :class:`Conflict` if an id is
        another team's or a unique index breaks: on SQLite none of ``docs`` is then written, on
        MongoDB those before it are (each document is atomic, the call is not).

        With ``where``, a document the team already has is replaced only if it matches
        ``where`` — a compare-and-set per document (the runner's fence, see
        :mod:`linqra.workflows.step_runs`). Returns the ids of the documents left as they were
        because they did not match, in the order given; ``[]`` when all were written."""

    async def get(self, collection: str, team_id: str, doc_id: str) -> Document | None:
        """The document with ``doc_id`` of ``team_id``, or ``None`` (also for another team's id)."""

    async def find(
        self,
        collection: str,
        team_id: str,
        where: Filter | None = None,
        *,
        sort: Sort = (),
        limit: int = 100,
        skip: int = 0,
    ) -> list[Document]:
        """Documents of ``team_id`` matching ``where``, sorted, paginated."""

    async def count(self, collection: str, team_id: str, where: Filter | None = None) -> int:
        """How many documents of ``team_id`` match ``where``."""

    async def aggregate(self, team_id: str, query: Aggregation) -> Groups:
        """``query`` over ``team_id``'s documents, computed in the database: one page of groups
        and how many there are (see :mod:`linqra.store.aggregation`)."""

    async def update(
        self,
        collection: str,
        team_id: str,
        doc_id: str,
        changes: Mapping[str, Any],
        *,
        where: Filter | None = None,
    ) -> bool:
        """Set top-level ``changes`` on one document if it exists and also matches ``where``.

        Atomic: a compare-and-set when ``where`` is given. Returns whether a
        document was updated. ``id`` and ``team_id`` cannot be changed.
        """

    async def delete(self, collection: str, team_id: str, doc_id: str) -> bool:
        """Delete one document; returns whether it existed."""

    async def scan_all_teams(
        self, collection: str, where: Filter, *, sort: Sort = (), limit: int = 100
    ) -> list[Document]:
        """Maintenance only: matching documents of every team (each carries ``team_id``),
        sorted as :meth:`find` sorts."""

    async def check(self, timeout: float) -> None:
        """The health probe: return if the store served a read and a write round trip within
        ``timeout`` seconds, else raise :class:`StoreError`. Writes no document."""

    async def close(self) -> None:
        """Release connections."""


def unavailable(message: str) -> StoreError:
    """The error every adapter raises for an outage: 503 with a retry hint.

    ``message`` names the backend and what failed, never a URL (it may carry credentials).
    """
    return StoreError(message, retry_after=RETRY_AFTER_SECONDS)


def scoped_id(team_id: str, name: str) -> str:
    """The stored id of a document named ``name`` within one team (the team's budget, its price
    for a model). An id is unique in its collection across every team, so a name that each team
    may use once must carry the team: ``"<team>|<name>"`` (``|`` is not allowed in team ids)."""
    return f"{require_team(team_id)}|{name}"


async def get_scoped(
    store: DocumentStore, collection: str, team_id: str, name: str
) -> Document | None:
    """The team's document named ``name``: under its :func:`scoped_id`, or — written before such
    ids were per team — under ``name`` itself (still the team's: every read checks the team)."""
    found = await store.get(collection, team_id, scoped_id(team_id, name))
    return found or await store.get(collection, team_id, name)


def require_team(team_id: str) -> str:
    if not isinstance(team_id, str) or not team_id:
        raise ValueError("the document store refuses an unscoped call: team_id is required")
    return team_id


def check_collection(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid collection name {name!r}")
    return name


def check_filter(where: Filter | None) -> Filter:
    """Validate a filter's shape so that every adapter sees the same language."""
    if not where:
        return {}
    for key, cond in where.items():
        if not _FIELD.fullmatch(key):
            raise ValidationError(f"invalid filter field {key!r}", field=key)
        if isinstance(cond, Mapping):
            for op, operand in cond.items():
                if op not in OPERATORS:
                    raise ValidationError(f"unsupported filter operator {op!r}", field=key)
                if op in ("$in", "$nin") and not isinstance(operand, list | tuple):
                    raise ValidationError(f"{op} needs a list", field=key)
    return where


def matches(doc: Mapping[str, Any], where: Filter) -> bool:
    """Evaluate a filter in Python (the reference semantics, used by SQLite's CAS)."""
    for key, cond in where.items():
        value = _path(doc, key)
        if isinstance(cond, Mapping):
            for op, operand in cond.items():
                if not _apply(op, value, operand):
                    return False
        elif value != cond:
            return False
    return True


def _path(doc: Mapping[str, Any], dotted: str) -> Any:
    current: Any = doc
    for part in dotted.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def _apply(op: str, value: Any, operand: Any) -> bool:
    if op == "$in":
        return value in operand
    if op == "$nin":
        return value not in operand
    if op == "$ne":
        return bool(value != operand)
    if value is None:
        return False
    try:
        if op == "$gt":
            return bool(value > operand)
        if op == "$gte":
            return bool(value >= operand)
        if op == "$lt":
            return bool(value < operand)
        if op == "$lte":
            return bool(value <= operand)
    except TypeError:
        return False
    raise ValueError(op)
