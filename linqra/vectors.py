"""The vector store port and its Milvus adapter (``pymilvus.MilvusClient``).

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

The same code serves Milvus Lite (``linqra up`` runs ``milvus-lite server`` on loopback and
every process connects by URI) and a Milvus server or cluster (``vectors.uri``).

A failed Milvus call is a :class:`VectorStoreError` (503 with ``Retry-After``) whose message
names the operation and, for a filtered call, the ``filter`` field — never the generated
expression (it holds the team id) nor the server's address; Milvus's own message is logged
at DEBUG on this module's logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from linqra.errors import LinqraError, Unavailable

__all__ = [
    "BUILTIN_FIELDS",
    "EmbeddedMilvus",
    "FieldType",
    "MilvusVectorStore",
    "VectorHit",
    "VectorStore",
    "VectorStoreError",
    "open_vector_store",
    "row_key",
]

FieldType = Literal["string", "int", "float", "bool"]

# filterable fields every chunk has, with their types
BUILTIN_FIELDS: dict[str, FieldType] = {
    "document_id": "string",
    "chunk_index": "int",
    "title": "string",
    "file_name": "string",
    "page_start": "int",
    "page_end": "int",
    "created_at": "int",
}
MAX_TEXT = 65_535
MAX_STRING = 2_048
KEY = "pk"  # the primary key: row_key(team, id)

log = logging.getLogger(__name__)
GRPC_OPTIONS = {
    # pymilvus pings an idle connection every 10 s; Milvus Lite (a gRPC server with default
    # policy) answers pings that frequent with GOAWAY "too_many_pings", and the next call on
    # that connection fails. Ping only while calls are in flight, at gRPC's permitted rate.
    "grpc.keepalive_time_ms": 300_000,
    "grpc.keepalive_permit_without_calls": 0,
}


class VectorStoreError(Unavailable):
    status = 503
    code = "vector_store_unavailable"


@dataclass(frozen=True, slots=True)
class VectorHit:
    id: str
    score: float
    fields: dict[str, Any]


class VectorStore(Protocol):
    """Chunks and their vectors in named collections, every row scoped to a team.

    Team scoping: every row is written with the caller's ``team_id``, and a team's query,
    search, count and delete see and change only its own rows, so a team cannot reach another
    team's vectors even by naming a physical collection. An upsert never replaces another team's
    row, even one with the same ``id``.

    ``expr`` is a Milvus boolean expression over ``id``, the built-in fields
    (:data:`BUILTIN_FIELDS`) and the collection's declared fields; user text reaches it only
    through :func:`linqra.knowledge.filters.compile_filter`. An empty ``expr`` matches all of the
    team's rows.

    A write becomes visible to reads within the backend's bounded staleness (at once on Milvus
    Lite). A backend that cannot be reached, or fails a call, raises :class:`VectorStoreError`
    (503).
    """

    async def create_collection(
        self, name: str, dimension: int, fields: Mapping[str, FieldType]
    ) -> None:
        """Create the collection (idempotent) with the declared scalar fields."""

    async def drop_collection(self, name: str) -> None:
        """Delete the collection with every team's rows; dropping a missing one is a no-op."""

    async def upsert(self, name: str, team_id: str, rows: Sequence[dict[str, Any]]) -> None:
        """Insert or replace the team's rows by ``id``; each carries ``vector`` and ``text``
        and may carry built-in and declared fields and a ``metadata`` object."""

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
        """The team's ``top_k`` rows matching ``expr`` nearest to ``vector``, nearest first;
        ``score`` is the cosine similarity (1.0 for the same direction), ``fields`` holds the
        ``output_fields``."""

    async def query(
        self,
        name: str,
        team_id: str,
        expr: str = "",
        *,
        output_fields: Sequence[str] = (),
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """The team's rows matching ``expr`` (at most ``limit``), each with ``id`` and the
        ``output_fields``."""

    async def count(self, name: str, team_id: str, expr: str = "") -> int:
        """How many of the team's rows match ``expr``."""

    async def delete(self, name: str, team_id: str, expr: str) -> None:
        """Delete the team's rows matching ``expr``."""

    async def flush(self, name: str) -> None:
        """Seal what was written into indexed segments (after a document's last batch)."""

    async def close(self) -> None: ...


def quote(value: str) -> str:
    """A Milvus string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def row_key(team_id: str, row_id: str) -> str:
    """The stored primary key of the team's row ``row_id`` (64 hex digits)."""
    return hashlib.sha256(f"{team_id}\x00{row_id}".encode()).hexdigest()


def _scoped(team_id: str, expr: str) -> str:
    team = f"team_id == {quote(team_id)}"
    return f"{team} and ({expr})" if expr else team


class MilvusVectorStore:
    """Milvus through the synchronous ``MilvusClient``, run off the event loop."""

    def __init__(self, uri: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.uri = uri
        self.token = token
        self.timeout = timeout
        self._client: Any = None
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

    async def _run(self, fn: Any, *args: Any, operation: str = "call", expr: str = "") -> Any:
        def call() -> Any:
            client = self._connect()
            try:
                return fn(client, *args)
            except LinqraError:
                raise
            except Exception as exc:
                raise _failed(operation, expr, exc) from exc

        return await asyncio.to_thread(call)

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
            index = client.prepare_index_params()
            index.add_index("vector", index_type="AUTOINDEX", metric_type="COSINE")
            client.create_collection(name, schema=schema, index_params=index)
            self._keyed[name] = True

        await self._run(create, operation="create a collection")

    async def drop_collection(self, name: str) -> None:
        def drop(client: Any) -> None:
            if client.has_collection(name):
                client.drop_collection(name)
            self._loaded.discard(name)
            self._keyed.pop(name, None)

        await self._run(drop, operation="drop a collection")

    def _ensure_loaded(self, client: Any, name: str) -> None:
        if name not in self._loaded:  # after a restart, Milvus needs load before search
            client.load_collection(name)
            self._loaded.add(name)

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
            scoped = [{**row, "team_id": team_id} for row in rows]
            if self._team_keyed(client, name):
                for row in scoped:
                    row[KEY] = row_key(team_id, str(row["id"]))
            return client.upsert(name, scoped)

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
            self._ensure_loaded(client, name)
            keyed = self._team_keyed(client, name)
            result = client.search(
                name,
                data=[list(vector)],
                limit=top_k,
                filter=_scoped(team_id, expr),
                output_fields=_with_id(output_fields) if keyed else list(output_fields),
                search_params={"metric_type": "COSINE"},
            )
            out = []
            for hit in result[0] if result else []:
                fields = dict(hit.get("entity") or {})
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
            self._ensure_loaded(client, name)
            keyed = self._team_keyed(client, name)
            rows = client.query(
                name,
                filter=_scoped(team_id, expr),
                output_fields=_with_id(output_fields) if keyed else list(output_fields),
                limit=limit,
            )
            if not keyed:
                return [dict(row) for row in rows]
            return [{k: v for k, v in row.items() if k != KEY} for row in rows]

        return list(await self._run(query, operation="query", expr=expr))

    async def count(self, name: str, team_id: str, expr: str = "") -> int:
        def count(client: Any) -> int:
            self._ensure_loaded(client, name)
            rows = client.query(name, filter=_scoped(team_id, expr), output_fields=["count(*)"])
            return int(rows[0]["count(*)"]) if rows else 0

        return int(await self._run(count, operation="count", expr=expr))

    async def delete(self, name: str, team_id: str, expr: str) -> None:
        await self._run(
            lambda client: client.delete(name, filter=_scoped(team_id, expr)),
            operation="delete chunks",
            expr=expr,
        )

    async def flush(self, name: str) -> None:
        # Milvus Lite searches unsealed rows by brute force in Python (about 400 ms at 10k rows
        # against 20-45 ms once sealed); a Milvus server seals on its own but accepts this too.
        # Milvus Lite refuses two flushes of one collection at once ("current_seq is
        # monotonic"): one at a time per collection in this process.
        async with self._flushing.setdefault(name, asyncio.Lock()):
            await self._run(lambda client: client.flush(name), operation="flush")

    async def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)


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


def open_vector_store(uri: str, token: str | None = None) -> VectorStore:
    return MilvusVectorStore(uri, token)


class EmbeddedMilvus:
    """One ``milvus-lite server`` on loopback for a data directory (Milvus Lite allows one
    process per directory; every Linqra process connects to this one by URI).

    Started by ``linqra up`` (and the test fixtures); stopped with :meth:`stop`.
    """

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> EmbeddedMilvus:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir.parent / "milvus-lite.log", "ab")  # noqa: SIM115 - the child owns it
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(self.data_dir),
             "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it in order
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise VectorStoreError(
                    f"milvus-lite exited with {self._proc.returncode}; see "
                    f"{self.data_dir.parent / 'milvus-lite.log'}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.5),
            ):
                return self
            time.sleep(0.1)
        self.stop()
        raise VectorStoreError(f"milvus-lite did not listen on port {self.port} in {timeout:.0f}s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
