"""The Milvus adapter of the vector store port (:mod:`linqra.vectors.base`), over
``pymilvus.MilvusClient``.

One Milvus collection per knowledge collection, named ``lq_<collection id>``. Its schema holds
the chunk (``id``, ``vector``, ``text``, ``document_id``, ``chunk_index``, ``title``,
``file_name``, ``page_start``, ``page_end``, ``created_at``), the collection's declared metadata
fields as real scalar fields (filterable fast), any other metadata in a ``metadata`` JSON field,
and ``team_id`` as the partition key. Every query, search and delete this adapter sends is
``team_id == <team> and (…)``: the team comes from the request context, never from user text,
so a team cannot read another team's vectors even by naming a physical collection.

The primary key is ``pk``, a hash of the team and the row's ``id`` (:func:`row_key`), so two
teams' rows with the same ``id`` are two rows and an upsert replaces only the caller's; ``id``
is an ordinary field, the one callers name and read. Collections made before this layout have
``id`` as their primary key: they are read and written as they were (a knowledge collection
belongs to one team, so its ids never meet another team's), found by their schema, which is
read once per collection and process.

The same code serves Milvus Lite (``linqra up`` runs its server on loopback, with the search
fast paths of :mod:`linqra.vectors.lite_server`, and every process connects by URI) and a
Milvus server or cluster (``knowledge.vector_uri``). Which index a collection gets, and when it
is rebuilt (after a flush, as it grows), is :mod:`linqra.vectors.index`'s
(``knowledge.vector_index``): FLAT then IVF_FLAT on Milvus Lite, HNSW on a server.

A failed Milvus call is a :class:`VectorStoreError` (503 with ``Retry-After``) whose message
names the operation and, for a filtered call, the ``filter`` field — never the generated
expression (it holds the team id) nor the server's address; Milvus's own message is logged
at DEBUG on this module's logger.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from linqra.config import VectorIndexSettings
from linqra.errors import LinqraError
from linqra.vectors.base import (
    BUILTIN_FIELDS,
    MAX_STRING,
    MAX_TEXT,
    FieldType,
    VectorHit,
    VectorStore,
    VectorStoreError,
    quote,
    row_key,
)
from linqra.vectors.index import (
    Backend,
    IndexPlan,
    backend_of,
    completed,
    current_plan,
    maintain,
    plan_for,
)

__all__ = ["MilvusVectorStore", "open_vector_store"]

KEY = "pk"  # the primary key: row_key(team, id)
NOT_LOADED = 101  # Milvus' "collection not loaded" (another process is rebuilding its index)
PLAN_TTL = 30.0  # seconds a process trusts its copy of a collection's index plan
# Milvus servers before 2.5 have no nullable fields: an unset scalar is stored as its type's
# sentinel and read back as None (a range filter on such a field can match unset rows there).
SENTINELS: dict[str, Any] = {"VARCHAR": "", "INT64": -(2**63), "DOUBLE": -1.7976931348623157e308}

log = logging.getLogger(__name__)
GRPC_OPTIONS = {
    # pymilvus pings an idle connection every 10 s; Milvus Lite (a gRPC server with default
    # policy) answers pings that frequent with GOAWAY "too_many_pings", and the next call on
    # that connection fails. Ping only while calls are in flight, at gRPC's permitted rate.
    "grpc.keepalive_time_ms": 300_000,
    "grpc.keepalive_permit_without_calls": 0,
}


def _scoped(team_id: str, expr: str) -> str:
    team = f"team_id == {quote(team_id)}"
    return f"{team} and ({expr})" if expr else team


class MilvusVectorStore:
    """Milvus through the synchronous ``MilvusClient``, run off the event loop."""

    def __init__(
        self,
        uri: str,
        token: str | None = None,
        timeout: float = 30.0,
        index: VectorIndexSettings | None = None,
        max_concurrent_calls: int = 16,
    ) -> None:
        if max_concurrent_calls < 1:
            raise ValueError("max_concurrent_calls must be >= 1")
        self.uri = uri
        self.max_concurrent_calls = max_concurrent_calls
        self._threads: ThreadPoolExecutor | None = None  # runs the client's blocking calls
        self.token = token
        self.timeout = timeout
        self.index = index or VectorIndexSettings()
        self._client: Any = None
        self._backend: Backend | None = None
        self._nullable: bool | None = None  # whether the server has nullable fields
        self._upserts = True  # False: a 2.3 server, whose upsert misplaces partition-key rows
        self._sentinels: dict[str, dict[str, Any]] = {}  # collection → field → stored for None
        self._plans: dict[str, tuple[IndexPlan, float]] = {}  # collection → (plan, read at)
        self._lock = threading.Lock()
        self._loaded: set[str] = set()
        self._keyed: dict[str, bool] = {}  # collection → primary key is row_key (else: id)
        self._flushing: dict[str, asyncio.Lock] = {}

    def _connect(self) -> Any:
        with self._lock:
            if self._client is None:
                from pymilvus import MilvusClient

                try:
                    self._client = MilvusClient(
                        uri=self.uri,
                        token=self.token or "",
                        timeout=self.timeout,
                        grpc_options=GRPC_OPTIONS,
                    )
                except Exception as exc:
                    log.debug("cannot connect to Milvus: %r", exc)
                    raise VectorStoreError(
                        f"the vector store does not answer ({type(exc).__name__}); try again"
                    ) from exc
            return self._client

    def _backend_of(self, client: Any) -> Backend:
        if self._backend is None:
            version = str(client.get_server_version())
            self._backend = backend_of(version)
            numbers = [int(n) for n in version.lstrip("v").split(".")[:2] if n.isdigit()]
            self._nullable = self._backend == "lite" or numbers >= [2, 5]
            self._upserts = self._backend == "lite" or numbers >= [2, 4]
        return self._backend

    def _unset(self, client: Any, name: str) -> dict[str, Any]:
        """Field → the value stored for None, on a server without nullable fields (else {})."""
        self._backend_of(client)
        if self._nullable:
            return {}
        if name not in self._sentinels:
            fixed = {KEY, "id", "vector", "text", "team_id"}
            out: dict[str, Any] = {}
            for f in client.describe_collection(name)["fields"]:
                kind = getattr(f.get("type"), "name", str(f.get("type")))
                if f["name"] not in fixed and (kind in SENTINELS or kind in ("BOOL", "JSON")):
                    out[f["name"]] = SENTINELS.get(kind, False if kind == "BOOL" else {})
            self._sentinels[name] = out
        return self._sentinels[name]

    def _read_back(self, client: Any, name: str, row: dict[str, Any]) -> dict[str, Any]:
        unset = self._unset(client, name)
        for field, value in row.items():
            if field in unset and unset[field] is not False and value == unset[field]:
                row[field] = None
        return row

    def _plan(self, client: Any, name: str) -> IndexPlan:
        """The collection's index plan (re-read after :data:`PLAN_TTL`: another process may
        have rebuilt it)."""
        plan, read_at = self._plans.get(name, (None, 0.0))
        if plan is None or time.monotonic() - read_at > PLAN_TTL:
            seen = current_plan(client.describe_index(name, "vector"))
            if seen.index_type == "IVF_FLAT" and not seen.params:  # Milvus Lite reports none
                rows = int(client.get_collection_stats(name).get("row_count", 0))
                seen = completed(seen, plan, rows)
            plan = seen
            self._plans[name] = (plan, time.monotonic())
        return plan

    async def _run(self, fn: Any, *args: Any, operation: str = "call", expr: str = "") -> Any:
        def call() -> Any:
            client = self._connect()
            try:
                return fn(client, *args)
            except LinqraError:
                raise
            except Exception as exc:
                raise _failed(operation, expr, exc) from exc

        with self._lock:  # this store's own threads: at most max_concurrent_calls in flight
            if self._threads is None:
                self._threads = ThreadPoolExecutor(
                    self.max_concurrent_calls, thread_name_prefix="milvus"
                )
            threads = self._threads
        context = contextvars.copy_context()  # the call's logs keep the request's fields
        return await asyncio.get_running_loop().run_in_executor(threads, context.run, call)

    async def create_collection(
        self, name: str, dimension: int, fields: Mapping[str, FieldType]
    ) -> None:
        def create(client: Any) -> None:
            from pymilvus import DataType

            if client.has_collection(name):
                return
            kinds = {
                "string": (DataType.VARCHAR, {"max_length": MAX_STRING}),
                "int": (DataType.INT64, {}),
                "float": (DataType.DOUBLE, {}),
                "bool": (DataType.BOOL, {}),
            }
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field(KEY, DataType.VARCHAR, is_primary=True, max_length=64)
            schema.add_field("id", DataType.VARCHAR, max_length=128)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
            schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT)
            schema.add_field("team_id", DataType.VARCHAR, max_length=128, is_partition_key=True)
            for field, kind in {**BUILTIN_FIELDS, **fields}.items():
                data_type, params = kinds[kind]
                schema.add_field(field, data_type, nullable=True, **params)
            schema.add_field("metadata", DataType.JSON, nullable=True)
            plan = plan_for(0, self._backend_of(client), self.index)
            client.create_collection(name, schema=schema, index_params=plan.index_params(client))
            self._keyed[name] = True
            self._plans[name] = (plan, time.monotonic())

        await self._run(create, operation="create a collection")

    async def drop_collection(self, name: str) -> None:
        def drop(client: Any) -> None:
            if client.has_collection(name):
                client.drop_collection(name)
            self._loaded.discard(name)
            self._keyed.pop(name, None)
            self._plans.pop(name, None)

        await self._run(drop, operation="drop a collection")

    def _ensure_loaded(self, client: Any, name: str) -> None:
        if name not in self._loaded:  # after a restart, Milvus needs load before search
            client.load_collection(name)
            self._loaded.add(name)

    def _read(self, client: Any, name: str, call: Any) -> Any:
        """``call()`` on a loaded collection; loaded again and retried once if another process
        released it (to rebuild its index) in between."""
        self._ensure_loaded(client, name)
        try:
            return call()
        except Exception as exc:
            if getattr(exc, "code", None) != NOT_LOADED:
                raise
            client.load_collection(name)
            return call()

    def _team_keyed(self, client: Any, name: str) -> bool:
        """Whether the collection's primary key is :func:`row_key` (older ones: ``id``)."""
        keyed = self._keyed.get(name)
        if keyed is None:
            fields = client.describe_collection(name)["fields"]
            keyed = any(f["name"] == KEY and f.get("is_primary") for f in fields)
            self._keyed[name] = keyed
        return keyed

    async def upsert(self, name: str, team_id: str, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return

        def upsert(client: Any) -> Any:
            unset = self._unset(client, name)
            scoped = [
                {**unset, **{k: v for k, v in row.items() if v is not None}, "team_id": team_id}
                for row in rows
            ] if unset else [{**row, "team_id": team_id} for row in rows]  # fmt: skip
            keyed = self._team_keyed(client, name)
            if keyed:
                for row in scoped:
                    row[KEY] = row_key(team_id, str(row["id"]))
            if self._upserts:
                return client.upsert(name, scoped)
            # Milvus 2.3's upsert puts a row in the wrong partition-key partition, where the
            # team filter never finds it: replace by primary key instead (not atomic there)
            client.delete(name, ids=[row[KEY] if keyed else row["id"] for row in scoped])
            return client.insert(name, scoped)

        await self._run(upsert, operation="store chunks")

    async def search(
        self,
        name: str,
        team_id: str,
        vector: Sequence[float],
        *,
        top_k: int,
        expr: str = "",
        output_fields: Sequence[str] = (),
    ) -> list[VectorHit]:
        def search(client: Any) -> list[VectorHit]:
            keyed = self._team_keyed(client, name)
            params = self._plan(client, name).search_params(self.index, top_k)
            result = self._read(
                client,
                name,
                lambda: client.search(
                    name,
                    data=[list(vector)],
                    limit=top_k,
                    filter=_scoped(team_id, expr),
                    output_fields=_with_id(output_fields) if keyed else list(output_fields),
                    search_params={"metric_type": "COSINE", "params": params},
                ),
            )
            out = []
            for hit in result[0] if result else []:
                fields = self._read_back(client, name, dict(hit.get("entity") or {}))
                row_id = fields["id"] if keyed else hit["id"]
                if keyed and "id" not in output_fields:
                    del fields["id"]
                out.append(VectorHit(str(row_id), float(hit["distance"]), fields))
            return out

        return list(await self._run(search, operation="search", expr=expr))

    async def query(
        self,
        name: str,
        team_id: str,
        expr: str = "",
        *,
        output_fields: Sequence[str] = (),
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        def query(client: Any) -> list[dict[str, Any]]:
            keyed = self._team_keyed(client, name)
            rows = self._read(
                client,
                name,
                lambda: client.query(
                    name,
                    filter=_scoped(team_id, expr),
                    output_fields=_with_id(output_fields) if keyed else list(output_fields),
                    limit=limit,
                ),
            )
            rows = [self._read_back(client, name, dict(row)) for row in rows]
            return rows if not keyed else [{k: v for k, v in r.items() if k != KEY} for r in rows]

        return list(await self._run(query, operation="query", expr=expr))

    async def count(self, name: str, team_id: str, expr: str = "") -> int:
        def count(client: Any) -> int:
            rows = self._read(
                client,
                name,
                lambda: client.query(
                    name, filter=_scoped(team_id, expr), output_fields=["count(*)"]
                ),
            )
            return int(rows[0]["count(*)"]) if rows else 0

        return int(await self._run(count, operation="count", expr=expr))

    async def delete(self, name: str, team_id: str, expr: str) -> None:
        await self._run(
            lambda client: client.delete(name, filter=_scoped(team_id, expr)),
            operation="delete chunks",
            expr=expr,
        )

    async def flush(self, name: str) -> None:
        # Milvus Lite searches unsealed rows by its slow stock path (every row checked in
        # Python); a Milvus server seals on its own but accepts this too. Then the index plan
        # for the collection's new size (linqra.vectors.index). Milvus Lite refuses two flushes
        # of one collection at once ("current_seq is monotonic"): one at a time per collection
        # in this process.
        def flush(client: Any) -> None:
            client.flush(name)
            try:
                known = self._plans.get(name, (None, 0.0))[0]
                plan = maintain(client, name, self._backend_of(client), self.index, known)
            except Exception as exc:  # the rows are flushed; the index waits for the next one
                log.warning("vector index of %s not maintained: %r", name, exc)
                self._plans.pop(name, None)
            else:
                self._plans[name] = (plan, time.monotonic())

        async with self._flushing.setdefault(name, asyncio.Lock()):
            await self._run(flush, operation="flush")

    async def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            threads, self._threads = self._threads, None
        if client is not None:
            await asyncio.to_thread(client.close)
        if threads is not None:
            threads.shutdown(wait=False)


def _with_id(output_fields: Sequence[str]) -> list[str]:
    return [*output_fields, "id"] if "id" not in output_fields else list(output_fields)


def _failed(operation: str, expr: str, exc: Exception) -> VectorStoreError:
    """The client-facing error: the operation and the field, never Milvus's text (it quotes
    the generated expression, team id included); that goes to the DEBUG log."""
    log.debug("Milvus %s failed (filter %r): %r", operation, expr, exc)
    code = getattr(exc, "code", None)
    detail = f"{type(exc).__name__}" + (f" {code}" if isinstance(code, int) else "")
    if expr:
        return VectorStoreError(
            f"the vector store could not {operation} with this filter ({detail})", field="filter"
        )
    return VectorStoreError(f"the vector store could not {operation} ({detail}); try again")


def open_vector_store(
    uri: str,
    token: str | None = None,
    index: VectorIndexSettings | None = None,
    *,
    max_concurrent_calls: int = 16,
) -> VectorStore:
    """The Milvus store at ``uri``; its calls run at most ``max_concurrent_calls`` at once in
    this process (``connections.milvus``) over the client's one gRPC channel."""
    return MilvusVectorStore(uri, token, index=index, max_concurrent_calls=max_concurrent_calls)
