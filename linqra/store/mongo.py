"""The MongoDB document store (``pymongo``'s asyncio client).

Documents keep our ``id`` as MongoDB's ``_id``; every query adds ``team_id``.
Our filter language is a subset of MongoDB's, so filters pass through
unchanged after validation. Tested against SecantusDB, a real MongoDB
wire-protocol server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

from linqra.errors import Conflict, StoreError
from linqra.store.base import (
    Document,
    Filter,
    IndexSpec,
    Sort,
    check_collection,
    check_filter,
    require_team,
)

__all__ = ["MongoStore"]


class MongoStore:
    """:class:`~linqra.store.base.DocumentStore` on MongoDB."""

    def __init__(self, url: str, *, database: str | None = None, timeout_ms: int = 10_000) -> None:
        try:
            from pymongo import AsyncMongoClient
        except ImportError as exc:  # pragma: no cover - pymongo is a core dependency
            raise StoreError("the MongoDB store needs pymongo: pip install pymongo") from exc
        db_name = database or urlparse(url).path.lstrip("/") or "linqra"
        self._client: Any = AsyncMongoClient(
            url, serverSelectionTimeoutMS=timeout_ms, tz_aware=True, connect=False
        )
        self._db: Any = self._client[db_name]

    @classmethod
    def from_url(cls, url: str) -> MongoStore:
        return cls(url)

    def _coll(self, name: str) -> Any:
        return self._db[check_collection(name)]

    async def ensure_indexes(self, specs: Sequence[IndexSpec]) -> None:
        for spec in specs:
            keys = [("team_id", 1), *((f, 1) for f in spec.fields)]
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
            await self._coll(collection).insert_one(record)
        except DuplicateKeyError as exc:
            raise Conflict(
                f"{collection} {doc['id']!r} already exists or breaks a unique index"
            ) from exc

    async def get(self, collection: str, team_id: str, doc_id: str) -> Document | None:
        require_team(team_id)
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
        cursor = self._coll(collection).find(query).sort(order).skip(skip).limit(limit)
        return [_out(d) async for d in cursor]

    async def count(self, collection: str, team_id: str, where: Filter | None = None) -> int:
        require_team(team_id)
        query = {**_in(check_filter(where)), "team_id": team_id}
        return int(await self._coll(collection).count_documents(query))

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
            result = await self._coll(collection).update_one(query, {"$set": dict(changes)})
        except DuplicateKeyError as exc:
            raise Conflict(f"{collection} {doc_id!r}: update breaks a unique index") from exc
        return bool(result.matched_count)

    async def delete(self, collection: str, team_id: str, doc_id: str) -> bool:
        require_team(team_id)
        result = await self._coll(collection).delete_one({"_id": doc_id, "team_id": team_id})
        return bool(result.deleted_count)

    async def scan_all_teams(
        self, collection: str, where: Filter, *, limit: int = 100
    ) -> list[Document]:
        return await self._find(collection, _in(check_filter(where)), (), limit, 0)

    async def close(self) -> None:
        await self._client.close()


def _in(where: Filter) -> dict[str, Any]:
    return {("_id" if k == "id" else k): v for k, v in where.items()}


def _out(doc: Mapping[str, Any]) -> Document:
    out = {k: v for k, v in doc.items() if k != "_id"}
    out["id"] = doc["_id"]
    return out
