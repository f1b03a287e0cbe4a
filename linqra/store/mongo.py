"""The MongoDB document store (``pymongo``'s asyncio client).

Documents keep our ``id`` as MongoDB's ``_id``; every query adds ``team_id``.
Our filter language is a subset of MongoDB's, so filters pass through
unchanged after validation; an aggregation is one pipeline (:mod:`linqra.store._pipeline`,
``$percentile`` needs MongoDB 7). Tested against SecantusDB, a real MongoDB wire-protocol
server.

Outages are seen in seconds: server selection and connecting give up after
``connect_timeout_seconds`` and every operation after ``timeout_seconds``
(pymongo's client-side operation timeout, ``timeoutMS``, plus an asyncio bound
around it). Connection failures and timeouts become
:class:`~linqra.errors.StoreError` (503); the message names the failure, never
the URL (it may carry a password). The client reconnects by itself once the
server is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlparse

from linqra.errors import Conflict, PayloadTooLarge, StoreError
from linqra.store._pipeline import MAX_WITHIN_IDS, groups, pipeline, within_ids
from linqra.store.aggregation import Aggregation, Groups, check_aggregation
from linqra.store.base import (
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    Document,
    Filter,
    IndexSpec,
    Sort,
    check_collection,
    check_filter,
    require_team,
    unavailable,
)

__all__ = ["MongoStore"]

log = logging.getLogger(__name__)


class MongoStore:
    """:class:`~linqra.store.base.DocumentStore` on MongoDB."""

    def __init__(
        self,
        url: str,
        *,
        database: str | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
        max_pool_size: int | None = None,
        min_pool_size: int | None = None,
    ) -> None:
        try:
            from pymongo import AsyncMongoClient
        except ImportError as exc:  # pragma: no cover - pymongo is a core dependency
            raise StoreError("the MongoDB store needs pymongo: pip install pymongo") from exc
        if timeout_seconds <= 0 or connect_timeout_seconds <= 0:
            raise ValueError("store timeouts must be > 0")
        self.timeout = timeout_seconds
        connect_ms = int(min(connect_timeout_seconds, timeout_seconds) * 1000)
        db_name = database or urlparse(url).path.lstrip("/") or "linqra"
        pool: dict[str, Any] = {}  # else the URL's maxPoolSize/minPoolSize, or pymongo's 100/0
        if max_pool_size is not None:
            pool["maxPoolSize"] = max_pool_size
        if min_pool_size is not None:
            pool["minPoolSize"] = min_pool_size
        self._client: Any = AsyncMongoClient(
            url,
            serverSelectionTimeoutMS=connect_ms,
            connectTimeoutMS=connect_ms,
            timeoutMS=int(timeout_seconds * 1000),
            tz_aware=True,
            connect=False,
            **pool,
        )
        self._db: Any = self._client[db_name]

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
        max_pool_size: int | None = None,
        min_pool_size: int | None = None,
    ) -> MongoStore:
        return cls(
            url,
            timeout_seconds=timeout_seconds,
            connect_timeout_seconds=connect_timeout_seconds,
            max_pool_size=max_pool_size,
            min_pool_size=min_pool_size,
        )

    @property
    def pool_size(self) -> tuple[int, int]:
        """Most and fewest connections per server this process's client keeps."""
        options = self._client.options.pool_options
        return int(options.max_pool_size), int(options.min_pool_size)

    def _coll(self, name: str) -> Any:
        return self._db[check_collection(name)]

    @asynccontextmanager
    async def _guard(self, what: str, timeout: float | None = None) -> AsyncIterator[None]:
        """Bound one operation in time and translate pymongo's outage errors into StoreError."""
        from bson.errors import InvalidDocument
        from pymongo.errors import ConnectionFailure, PyMongoError

        limit = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                yield
        except TimeoutError:
            raise unavailable(
                f"the document store did not answer ({what}) within {limit:g}s"
            ) from None
        except ConnectionFailure as exc:
            log.warning("mongodb %s failed: %s: %s", what, type(exc).__name__, exc)
            raise unavailable(
                f"the document store is unreachable ({what}: MongoDB {type(exc).__name__})"
            ) from None
        except InvalidDocument as exc:
            raise PayloadTooLarge(f"the document cannot be stored ({what}): {exc}") from None
        except PyMongoError as exc:
            if not exc.timeout:
                raise
            log.warning("mongodb %s timed out: %s: %s", what, type(exc).__name__, exc)
            raise unavailable(
                f"the document store did not answer ({what}: MongoDB {type(exc).__name__})"
            ) from None

    async def ensure_indexes(self, specs: Sequence[IndexSpec]) -> None:
        for spec in specs:
            keys = [("team_id", 1), *((f, 1) for f in spec.fields)]
            async with self._guard("create index"):
                await self._coll(spec.collection).create_index(
                    keys, unique=spec.unique, name=spec.index_name()
                )

    async def insert(self, collection: str, team_id: str, doc: Document) -> None:
        from pymongo.errors import DuplicateKeyError

        require_team(team_id)
        if not isinstance(doc.get("id"), str) or not doc["id"]:
            raise ValueError("a document needs a string id")
        record = {k: v for k, v in doc.items() if k != "id"}
        record.update(_id=doc["id"], team_id=team_id)
        try:
            async with self._guard("insert"):
                await self._coll(collection).insert_one(record)
        except DuplicateKeyError as exc:
            raise Conflict(
                f"{collection} {doc['id']!r} already exists or breaks a unique index"
            ) from exc

    async def put_many(
        self,
        collection: str,
        team_id: str,
        docs: Sequence[Document],
        *,
        where: Filter | None = None,
    ) -> list[str]:
        from pymongo import ReplaceOne
        from pymongo.errors import BulkWriteError

        require_team(team_id)
        if any(not isinstance(doc.get("id"), str) or not doc["id"] for doc in docs):
            raise ValueError("a document needs a string id")
        if not docs:
            return []
        condition = _in(check_filter(where))
        writes = [
            ReplaceOne(
                {"_id": doc["id"], "team_id": team_id, **condition},
                {**{k: v for k, v in doc.items() if k != "id"}, "team_id": team_id},
                upsert=True,
            )
            for doc in docs
        ]
        try:  # with a condition each document stands alone: a refused one stops no other
            async with self._guard("put_many"):
                await self._coll(collection).bulk_write(writes, ordered=not condition)
        except BulkWriteError as exc:  # the upsert's insert hit an existing id, or a unique index
            failed = [docs[e["index"]]["id"] for e in exc.details.get("writeErrors", [])]
            errors, concern = exc.details.get("writeErrors"), exc.details.get("writeConcernErrors")
            if condition and errors and not concern and all(e.get("code") == 11000 for e in errors):
                unmatched = {"_id": {"$in": failed}, "team_id": team_id, "$nor": [condition]}
                async with self._guard("put_many"):  # the team's own, not matching: refused
                    ours = await self._coll(collection).distinct("_id", unmatched)
                if set(ours) == set(failed):
                    return failed
            raise Conflict(
                f"{collection}: a document is another's or breaks a unique index"
            ) from exc
        return []

    async def get(self, collection: str, team_id: str, doc_id: str) -> Document | None:
        require_team(team_id)
        async with self._guard("get"):
            found = await self._coll(collection).find_one({"_id": doc_id, "team_id": team_id})
        return None if found is None else _out(found)

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
        require_team(team_id)
        query = {**_in(check_filter(where)), "team_id": team_id}
        return await self._find(collection, query, sort, limit, skip)

    async def _find(
        self, collection: str, query: dict[str, Any], sort: Sort, limit: int, skip: int
    ) -> list[Document]:
        order = [(f, -1 if d < 0 else 1) for f, d in sort] + [("_id", 1)]
        async with self._guard("find"):
            cursor = self._coll(collection).find(query).sort(order).skip(skip).limit(limit)
            return [_out(d) async for d in cursor]

    async def count(self, collection: str, team_id: str, where: Filter | None = None) -> int:
        require_team(team_id)
        query = {**_in(check_filter(where)), "team_id": team_id}
        async with self._guard("count"):
            return int(await self._coll(collection).count_documents(query))

    async def aggregate(self, team_id: str, query: Aggregation) -> Groups:
        require_team(team_id)
        first = within_ids(check_aggregation(query), team_id)
        async with self._guard("aggregate"):
            ids = None
            if first is not None:
                found = self._coll(first[0]).find(first[1], {"_id": 1}).limit(MAX_WITHIN_IDS + 1)
                ids = [doc["_id"] async for doc in found]
                ids = ids if len(ids) <= MAX_WITHIN_IDS else None
            collection, stages = pipeline(query, team_id, ids)
            cursor = await self._coll(collection).aggregate(stages)
            answers = [doc async for doc in cursor]
        return groups(query, answers[0] if answers else {})

    async def update(
        self,
        collection: str,
        team_id: str,
        doc_id: str,
        changes: Mapping[str, Any],
        *,
        where: Filter | None = None,
    ) -> bool:
        from pymongo.errors import DuplicateKeyError

        require_team(team_id)
        if "id" in changes or "team_id" in changes:
            raise ValueError("id and team_id cannot be changed")
        query = {**_in(check_filter(where)), "_id": doc_id, "team_id": team_id}
        try:
            async with self._guard("update"):
                result = await self._coll(collection).update_one(query, {"$set": dict(changes)})
        except DuplicateKeyError as exc:
            raise Conflict(f"{collection} {doc_id!r}: update breaks a unique index") from exc
        return bool(result.matched_count)

    async def delete(self, collection: str, team_id: str, doc_id: str) -> bool:
        require_team(team_id)
        async with self._guard("delete"):
            result = await self._coll(collection).delete_one({"_id": doc_id, "team_id": team_id})
        return bool(result.deleted_count)

    async def scan_all_teams(
        self, collection: str, where: Filter, *, sort: Sort = (), limit: int = 100
    ) -> list[Document]:
        return await self._find(collection, _in(check_filter(where)), sort, limit, 0)

    async def check(self, timeout: float) -> None:
        """``ping``, a read and a write that matches nothing (so a writable server was found)."""
        probe = self._db["linqra_health"]
        async with self._guard("health check", timeout):
            await self._db.command("ping")
            await probe.find_one({"_id": "probe"})
            await probe.update_one({"_id": "probe", "never": True}, {"$set": {"never": True}})

    async def close(self) -> None:
        await self._client.close()


def _in(where: Filter) -> dict[str, Any]:
    return {("_id" if k == "id" else k): v for k, v in where.items()}


def _out(doc: Mapping[str, Any]) -> Document:
    out = {k: v for k, v in doc.items() if k != "_id"}
    out["id"] = doc["_id"]
    return out
