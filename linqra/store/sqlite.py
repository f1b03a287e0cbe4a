"""The embedded default document store: one SQLite file in WAL mode.

Safe across processes (every Ray actor, the gateway replicas and driver
scripts open the same file): WAL lets readers run beside one writer, writes
take ``BEGIN IMMEDIATE`` and wait up to ``busy_timeout`` for the lock. Each
collection is a table ``c_<name>(id, team_id, data)``; indexes are SQLite
expression indexes on ``json_extract`` so filtered reads use them.

Writes go through one writer thread per store with *group commit*: every write
queued while a transaction runs joins the next one (each in its own SAVEPOINT,
so one failing write does not undo the others), and a caller is answered only
after its transaction committed. 100 concurrent writers cost a few commits, not
100 lock hand-offs between threads. Reads run in worker threads, one
connection per thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import queue
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from linqra.errors import Conflict
from linqra.store.base import (
    Document,
    Filter,
    IndexSpec,
    Sort,
    check_collection,
    check_filter,
    matches,
    require_team,
)

__all__ = ["SQLiteStore"]

_BUSY_TIMEOUT_MS = 30_000
_MAX_BATCH = 512


class SQLiteStore:
    """:class:`~linqra.store.base.DocumentStore` on a SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._tables: set[str] = set()
        self._tables_lock = threading.Lock()
        self._writes: queue.SimpleQueue[
            tuple[Any, tuple[Any, ...], concurrent.futures.Future[Any]] | None
        ] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        """``sqlite:///relative.db`` or ``sqlite:////absolute/path.db`` (as in SQLAlchemy)."""
        if not url.startswith("sqlite:///"):
            raise ValueError(f"not a sqlite URL: {url!r} (expected sqlite:///PATH)")
        return cls(url.removeprefix("sqlite:///"))

    # -- connection management -------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    async def _write(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(conn, *args)`` in the writer thread's next transaction; return its result."""
        if self._writer is None:
            with self._writer_lock:
                if self._writer is None:
                    self._writer = threading.Thread(
                        target=self._write_loop, name="linqra-sqlite-writer", daemon=True
                    )
                    self._writer.start()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._writes.put((fn, args, future))
        return await asyncio.wrap_future(future)

    def _write_loop(self) -> None:
        conn = self._connect()
        while True:
            item = self._writes.get()
            if item is None:
                conn.close()
                return
            batch = [item]
            while len(batch) < _MAX_BATCH:
                try:
                    nxt = self._writes.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._writes.put(None)
                    break
                batch.append(nxt)
            self._commit(conn, batch)

    def _commit(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        results: list[tuple[concurrent.futures.Future[Any], Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, args, future in batch:
                conn.execute("SAVEPOINT w")
                try:
                    value = fn(conn, *args)
                except Exception as exc:
                    conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
                    self._forget_tables()  # a table created inside the savepoint is gone again
                    results.append((future, None, exc))
                else:
                    conn.execute("RELEASE w")
                    results.append((future, value, None))
            conn.execute("COMMIT")
        except Exception as exc:  # the transaction itself failed: nobody's write happened
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._forget_tables()
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for future, value, error in results:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

    def _table(self, conn: sqlite3.Connection, collection: str) -> str:
        table = f"c_{check_collection(collection)}"
        if table not in self._tables:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} ("
                "id TEXT PRIMARY KEY, team_id TEXT NOT NULL, data TEXT NOT NULL)"
            )
            conn.execute(f"CREATE INDEX IF NOT EXISTS ix_{table}_team ON {table}(team_id)")
            with self._tables_lock:
                self._tables.add(table)
        return table

    def _forget_tables(self) -> None:
        with self._tables_lock:
            self._tables.clear()

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    # -- port -------------------------------------------------------------------
    async def ensure_indexes(self, specs: Sequence[IndexSpec]) -> None:
        await self._write(self._ensure_indexes, specs)

    def _ensure_indexes(self, conn: sqlite3.Connection, specs: Sequence[IndexSpec]) -> None:
        for spec in specs:
            table = self._table(conn, spec.collection)
            exprs = ", ".join(["team_id", *(_extract(f) for f in spec.fields)])
            unique = "UNIQUE " if spec.unique else ""
            conn.execute(
                f"CREATE {unique}INDEX IF NOT EXISTS {spec.index_name()} ON {table}({exprs})"
            )

    async def insert(self, collection: str, team_id: str, doc: Document) -> None:
        require_team(team_id)
        if not isinstance(doc.get("id"), str) or not doc["id"]:
            raise ValueError("a document needs a string id")
        await self._write(self._insert, collection, team_id, doc)

    def _insert(
        self, conn: sqlite3.Connection, collection: str, team_id: str, doc: Document
    ) -> None:
        table = self._table(conn, collection)
        record = {**doc, "team_id": team_id}
        try:
            conn.execute(
                f"INSERT INTO {table}(id, team_id, data) VALUES (?, ?, ?)",
                (doc["id"], team_id, json.dumps(record, separators=(",", ":"))),
            )
        except sqlite3.IntegrityError as exc:
            raise Conflict(
                f"{collection} {doc['id']!r} already exists or breaks a unique index"
            ) from exc

    async def get(self, collection: str, team_id: str, doc_id: str) -> Document | None:
        require_team(team_id)
        return await self._run(self._get, collection, team_id, doc_id)  # type: ignore[no-any-return]

    def _get(self, collection: str, team_id: str, doc_id: str) -> Document | None:
        conn = self._conn()
        table = self._table(conn, collection)
        row = conn.execute(
            f"SELECT data FROM {table} WHERE id = ? AND team_id = ?", (doc_id, team_id)
        ).fetchone()
        return None if row is None else _load(row[0])

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
        return await self._run(  # type: ignore[no-any-return]
            self._find, collection, team_id, check_filter(where), sort, limit, skip
        )

    def _find(
        self, collection: str, team_id: str | None, where: Filter, sort: Sort, limit: int, skip: int
    ) -> list[Document]:
        conn = self._conn()
        table = self._table(conn, collection)
        clauses, args = _where_sql(where)
        if team_id is not None:
            clauses.insert(0, "team_id = ?")
            args.insert(0, team_id)
        sql = f"SELECT data FROM {table}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        order = [f"{_extract(f)} {'DESC' if d < 0 else 'ASC'}" for f, d in sort]
        sql += " ORDER BY " + ", ".join([*order, "id ASC"])
        sql += " LIMIT ? OFFSET ?"
        rows = conn.execute(sql, (*args, limit, skip)).fetchall()
        return [_load(r[0]) for r in rows]

    async def count(self, collection: str, team_id: str, where: Filter | None = None) -> int:
        require_team(team_id)
        return await self._run(self._count, collection, team_id, check_filter(where))  # type: ignore[no-any-return]

    def _count(self, collection: str, team_id: str, where: Filter) -> int:
        conn = self._conn()
        table = self._table(conn, collection)
        clauses, args = _where_sql(where)
        sql = f"SELECT COUNT(*) FROM {table} WHERE " + " AND ".join(["team_id = ?", *clauses])
        return int(conn.execute(sql, (team_id, *args)).fetchone()[0])

    async def update(
        self,
        collection: str,
        team_id: str,
        doc_id: str,
        changes: Mapping[str, Any],
        *,
        where: Filter | None = None,
    ) -> bool:
        require_team(team_id)
        if "id" in changes or "team_id" in changes:
            raise ValueError("id and team_id cannot be changed")
        return await self._write(  # type: ignore[no-any-return]
            self._update, collection, team_id, doc_id, dict(changes), check_filter(where)
        )

    def _update(
        self,
        conn: sqlite3.Connection,
        collection: str,
        team_id: str,
        doc_id: str,
        changes: dict[str, Any],
        where: Filter,
    ) -> bool:
        table = self._table(conn, collection)
        row = conn.execute(
            f"SELECT data FROM {table} WHERE id = ? AND team_id = ?", (doc_id, team_id)
        ).fetchone()
        if row is None:
            return False
        doc = _load(row[0])
        if where and not matches(doc, where):
            return False
        doc.update(changes)
        try:
            conn.execute(
                f"UPDATE {table} SET data = ? WHERE id = ?",
                (json.dumps(doc, separators=(",", ":")), doc_id),
            )
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"{collection} {doc_id!r}: update breaks a unique index") from exc
        return True

    async def delete(self, collection: str, team_id: str, doc_id: str) -> bool:
        require_team(team_id)
        return await self._write(self._delete, collection, team_id, doc_id)  # type: ignore[no-any-return]

    def _delete(self, conn: sqlite3.Connection, collection: str, team_id: str, doc_id: str) -> bool:
        table = self._table(conn, collection)
        cur = conn.execute(f"DELETE FROM {table} WHERE id = ? AND team_id = ?", (doc_id, team_id))
        return cur.rowcount > 0

    async def scan_all_teams(
        self, collection: str, where: Filter, *, limit: int = 100
    ) -> list[Document]:
        return await self._run(  # type: ignore[no-any-return]
            self._find, collection, None, check_filter(where), (), limit, 0
        )

    async def close(self) -> None:
        if self._writer is not None:
            self._writes.put(None)
            await asyncio.to_thread(self._writer.join, 10)
            self._writer = None
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _load(text: str) -> Document:
    doc: Document = json.loads(text)
    return doc


def _extract(field: str) -> str:
    # field names are validated by check_filter / IndexSpec authors: letters, digits, _ and dots
    return f"json_extract(data, '$.{field}')"


def _where_sql(where: Filter) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for key, cond in where.items():
        expr = _extract(key)
        if isinstance(cond, Mapping):
            for op, operand in cond.items():
                clause, extra = _op_sql(expr, op, operand)
                clauses.append(clause)
                args.extend(extra)
        elif cond is None:
            clauses.append(f"{expr} IS NULL")
        else:
            clauses.append(f"{expr} = ?")
            args.append(_param(cond))
    return clauses, args


def _op_sql(expr: str, op: str, operand: Any) -> tuple[str, list[Any]]:
    if op in ("$in", "$nin"):
        values = [_param(v) for v in operand]
        if not values:
            return ("0" if op == "$in" else "1"), []
        marks = ", ".join("?" for _ in values)
        neg = "NOT " if op == "$nin" else ""
        return f"{expr} {neg}IN ({marks})", values
    if op == "$ne":
        if operand is None:
            return f"{expr} IS NOT NULL", []
        return f"({expr} IS NULL OR {expr} != ?)", [_param(operand)]
    sql_op = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
    return f"{expr} {sql_op} ?", [_param(operand)]


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return value
