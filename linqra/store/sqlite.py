"""The embedded default document store: one SQLite file in WAL mode.

Safe across processes (every Ray actor, the gateway replicas and driver
scripts open the same file): WAL lets readers run beside one writer, writes
take ``BEGIN IMMEDIATE`` and wait up to ``busy_timeout`` for the lock. Each
collection is a table ``c_<name>(id, team_id, data)``; indexes are SQLite
expression indexes on ``json_extract`` so filtered reads use them.

Writes go through one writer thread per store with *group commit*
(:mod:`linqra.store._sqlite_writer`): every write queued while a transaction runs joins the
next one, each in its own SAVEPOINT, and a caller is answered only after its transaction
committed. Reads run in worker threads, one connection per thread. This module is the port on
top: connections, tables and calls; the SQL itself (filters over ``json_extract``, the
aggregation as one statement) is :mod:`linqra.store._sql`.

The writer outlives its callers: a write whose caller gave up (cancelled, timed
out, its event loop closed) before the writer reached it is skipped, one the
writer already started is committed whole and its answer dropped. Nothing a
caller or a write function does can end the writer thread; should it end anyway,
the next call starts a new one. Every call is bounded by ``timeout_seconds``
(:class:`~linqra.errors.StoreError` after it, and for SQLite's busy, locked and
I/O errors), so a stuck file means 503s, never a hang.

Documents are JSON text, written and read with ``orjson`` (:func:`_dump`, :func:`_load`): the
standard ``json`` module took 8 µs to write a step record and 5.5-6.5 µs to read one, orjson
0.6 and 1.7 (1.6 and 2.9 with the checks below) — in a 1,000-step fan-out, two writes and a
read per step were a sixth of the runner's CPU. The text written is the text ``json`` wrote,
and what orjson would read or write differently goes through ``json`` as before (see both).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from linqra.errors import Conflict
from linqra.store._sql import DECIMAL_SUM, DecimalSum, aggregate_sql, extract, groups, where_sql
from linqra.store._sqlite_writer import GroupCommitWriter
from linqra.store.aggregation import Aggregation, Groups, check_aggregation
from linqra.store.base import (
    DEFAULT_TIMEOUT_SECONDS,
    Document,
    Filter,
    IndexSpec,
    Sort,
    check_collection,
    check_filter,
    matches,
    require_team,
    unavailable,
)

__all__ = ["SQLiteStore"]

# SQLite's primary result codes that mean "the file cannot serve now" (not "your query is wrong")
_OUTAGE_CODES = {
    5: "busy",
    6: "locked",
    7: "out of memory",
    8: "read-only",
    9: "interrupted",
    10: "disk I/O error",
    13: "disk full",
    14: "cannot open the file",
    15: "lock protocol error",
}


class SQLiteStore:
    """:class:`~linqra.store.base.DocumentStore` on a SQLite file."""

    def __init__(
        self, path: str | Path, *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be > 0")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout_seconds
        self._local = threading.local()
        self._tables: set[str] = set()
        self._tables_lock = threading.Lock()
        self._writer = GroupCommitWriter(
            self._connect, label=str(self.path), on_rollback=self._forget_tables
        )

    @classmethod
    def from_url(cls, url: str, *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> SQLiteStore:
        """``sqlite:///relative.db`` or ``sqlite:////absolute/path.db`` (as in SQLAlchemy)."""
        if not url.startswith("sqlite:///"):
            raise ValueError(f"not a sqlite URL: {url!r} (expected sqlite:///PATH)")
        return cls(url.removeprefix("sqlite:///"), timeout_seconds=timeout_seconds)

    # -- connection management -------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        # a lock held by another process is waited for as long as a caller waits, no longer
        busy_ms = max(1, int(self.timeout * 1000))
        conn = sqlite3.connect(self.path, timeout=busy_ms / 1000, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout={busy_ms}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.create_aggregate(DECIMAL_SUM, 1, DecimalSum)  # type: ignore[arg-type]
        except BaseException:
            conn.close()
            raise
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    async def _write(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(conn, *args)`` in the writer thread's next transaction; return its result."""
        future = self._writer.submit(fn, args)
        try:
            async with asyncio.timeout(self.timeout):
                return await future
        except TimeoutError:
            # the timeout cancelled the future: if the writer had not started it, it never will
            raise unavailable(
                f"the document store did not answer a write within {self.timeout:g}s"
                " (SQLite file busy or locked by another process?)"
            ) from None
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

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

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run the read ``fn(*args)`` in a worker thread, bounded by the store's timeout."""
        used: list[sqlite3.Connection] = []

        def read() -> Any:
            used.append(self._conn())
            return fn(*args)

        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.to_thread(read)
        except TimeoutError:
            for conn in used:  # stop the statement so the worker thread is free again
                conn.interrupt()
            raise unavailable(
                f"the document store did not answer a read within {self.timeout:g}s"
            ) from None
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    # -- port -------------------------------------------------------------------
    async def ensure_indexes(self, specs: Sequence[IndexSpec]) -> None:
        await self._write(self._ensure_indexes, specs)

    def _ensure_indexes(self, conn: sqlite3.Connection, specs: Sequence[IndexSpec]) -> None:
        for spec in specs:
            table = self._table(conn, spec.collection)
            exprs = ", ".join(["team_id", *(extract(f) for f in spec.fields)])
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
                (doc["id"], team_id, _dump(record)),
            )
        except sqlite3.IntegrityError as exc:
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
        require_team(team_id)
        if any(not isinstance(doc.get("id"), str) or not doc["id"] for doc in docs):
            raise ValueError("a document needs a string id")
        if not docs:
            return []
        return await self._write(  # type: ignore[no-any-return]
            self._put_many, collection, team_id, list(docs), check_filter(where)
        )

    def _put_many(
        self,
        conn: sqlite3.Connection,
        collection: str,
        team_id: str,
        docs: list[Document],
        where: Filter,
    ) -> list[str]:
        table = self._table(conn, collection)
        # the filter is checked by SQLite against the stored row, in the upsert itself: no read,
        # parse and match in Python per record (each step record a runner writes has a filter)
        clauses, where_args = where_sql(where)
        guard = " AND ".join(["team_id = excluded.team_id", *clauses])
        sql = (
            f"INSERT INTO {table}(id, team_id, data) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE"
            f" SET data = excluded.data WHERE {guard}"
        )
        owner = f"SELECT team_id FROM {table} WHERE id = ?"
        refused: list[str] = []
        for doc in docs:  # one SAVEPOINT of the writer's transaction: all or none
            data = _dump({**doc, "team_id": team_id})
            try:
                written = conn.execute(sql, (doc["id"], team_id, data, *where_args)).rowcount
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"{collection} {doc['id']!r} breaks a unique index") from exc
            if written == 1:
                continue
            row = conn.execute(owner, (doc["id"],)).fetchone()
            if where and row is not None and row[0] == team_id:
                refused.append(doc["id"])  # this team's, and the filter does not match it
                continue
            raise Conflict(f"{collection} {doc['id']!r} already exists")
        return refused

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
        clauses, args = where_sql(where)
        if team_id is not None:
            clauses.insert(0, "team_id = ?")
            args.insert(0, team_id)
        sql = f"SELECT data FROM {table}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        order = [f"{extract(f)} {'DESC' if d < 0 else 'ASC'}" for f, d in sort]
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
        clauses, args = where_sql(where)
        sql = f"SELECT COUNT(*) FROM {table} WHERE " + " AND ".join(["team_id = ?", *clauses])
        return int(conn.execute(sql, (team_id, *args)).fetchone()[0])

    async def aggregate(self, team_id: str, query: Aggregation) -> Groups:
        require_team(team_id)
        return await self._run(self._aggregate, team_id, check_aggregation(query))  # type: ignore[no-any-return]

    def _aggregate(self, team_id: str, spec: Aggregation) -> Groups:
        conn = self._conn()
        table = self._table(conn, spec.collection)
        other = None if spec.within is None else self._table(conn, spec.within.collection)
        sql, args = aggregate_sql(spec, team_id, table, other)
        cursor = conn.execute(sql, args)
        found = groups(spec, [d[0] for d in cursor.description], cursor.fetchall())
        if not found.rows and spec.skip:  # past the last page: how many groups there are
            cursor = conn.execute(
                *aggregate_sql(replace(spec, skip=0, limit=1), team_id, table, other)
            )
            first = groups(spec, [d[0] for d in cursor.description], cursor.fetchall())
            return Groups([], first.total)
        return found

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
                (_dump(doc), doc_id),
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
        self, collection: str, where: Filter, *, sort: Sort = (), limit: int = 100
    ) -> list[Document]:
        return await self._run(  # type: ignore[no-any-return]
            self._find, collection, None, check_filter(where), sort, limit, 0
        )

    async def check(self, timeout: float) -> None:
        """A read in a worker thread and an empty transaction through the writer thread."""
        try:
            async with asyncio.timeout(timeout):
                await self._run(self._probe_read)
                await self._write(_probe_write)
        except TimeoutError:
            raise unavailable(f"the document store did not answer within {timeout:g}s") from None
        if not self._writer.alive():
            raise unavailable("the document store's writer thread is not running")

    def _probe_read(self) -> None:
        self._conn().execute("SELECT count(*) FROM sqlite_master").fetchone()

    async def close(self) -> None:
        await self._writer.stop(10)
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _translate(exc: sqlite3.Error) -> Exception:
    """SQLite's "cannot serve now" errors become StoreError (503); others stay as they are."""
    code = getattr(exc, "sqlite_errorcode", None)
    reason = None if code is None else _OUTAGE_CODES.get(code & 0xFF)
    if reason is None and isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        if "locked" in text or "busy" in text or "disk" in text or "unable to open" in text:
            reason = str(exc)
    if reason is None:
        return exc
    return unavailable(f"the document store cannot serve now (SQLite: {reason})")


def _probe_write(conn: sqlite3.Connection) -> None:
    conn.execute("SELECT 1").fetchone()


_ORJSON = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
)
"""Keys as ``json`` writes them (``1`` → ``"1"``); a dataclass or datetime refused, as ``json``
refuses it, rather than written in orjson's own way."""
_NUMBERS = bytes(48 if 48 <= b <= 57 else b if b in b"e-" else 32 for b in range(256))
"""Each digit made ``0``, ``e`` and ``-`` kept, any other byte a space: a text's digit runs and
negative exponents, found by ``bytes.translate`` and a substring search (1.2 µs for a step
record; a regular expression took 9)."""
_LONG_NUMBER = b"0" * 19
"""19 digits in a row: what may be an integer beyond 64 bits, which orjson reads as a float."""
_NEGATIVE_EXPONENT = b"0e-"
"""A number with a negative exponent (or a string that looks like one): orjson writes ``1e-7``
where ``json`` writes ``1e-07``."""


def _dump(doc: Mapping[str, Any]) -> str:
    """``doc`` as compact JSON text, the same text the ``json`` module writes
    (``separators=(",", ":")``, text beyond ASCII escaped): filters and groupings compare
    objects and arrays by their stored text, and rows written before orjson wrote them hold
    ``json``'s. Where orjson's text could differ, ``json`` writes the document: text beyond
    ASCII or a DEL (``json`` escapes them), a float below 1e-4 (``json`` writes ``1e-05`` and
    ``1e-07``, orjson ``0.00001`` and ``1e-7``), what orjson refuses (an integer beyond 64 bits).
    The checks cost about 1 µs on a step record; a string that only looks like such a number
    costs a ``json`` write, nothing more.

    Two differences remain, both in values Linqra never hands a store: a NaN or infinity is
    written as ``null`` (``json`` wrote ``NaN``, which SQLite's JSON functions cannot read), and
    a plain ``Enum`` or a ``UUID`` as its value (``json`` refused them)."""
    try:
        out: bytes | None = orjson.dumps(doc, option=_ORJSON)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        out = None
    if (
        out is None
        or not out.isascii()
        or b"\x7f" in out
        or b"0.0000" in out
        or _NEGATIVE_EXPONENT in out.translate(_NUMBERS)
    ):
        return json.dumps(doc, separators=(",", ":"))
    return out.decode()


def _load(text: str) -> Document:
    """A stored document. Text that may hold an integer beyond 64 bits, or that orjson refuses
    (``NaN`` written by ``json`` before orjson wrote documents), is read by ``json``."""
    doc: Document
    if _LONG_NUMBER not in text.encode().translate(_NUMBERS):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
        else:
            return doc
    doc = json.loads(text)
    return doc
