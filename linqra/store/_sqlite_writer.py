"""The SQLite store's writer thread: every write of one store, with group commit.

Every write queued while a transaction runs joins the next one (each in its own SAVEPOINT, so
one failing write does not undo the others), and a caller is answered only after its
transaction committed. 100 concurrent writers cost a few commits, not 100 lock hand-offs between
threads.

The writer outlives its callers: a write whose caller gave up (cancelled the future) before the
writer reached it is skipped, one the writer already started is committed whole and its answer
dropped. Nothing a write function does can end the thread; should it end anyway, the next
:meth:`GroupCommitWriter.submit` starts a new one. Timeouts and error translation are the
store's (:mod:`linqra.store.sqlite`); this module only runs transactions.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["GroupCommitWriter"]

log = logging.getLogger(__name__)

_MAX_BATCH = 512

_Job = tuple[Callable[..., Any], tuple[Any, ...], "concurrent.futures.Future[Any]"]


class GroupCommitWriter:
    """One writer thread with its own connection (from ``connect``); ``on_rollback`` is called
    whenever a rollback may have undone something (the store forgets the tables it made)."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        label: str,
        on_rollback: Callable[[], None],
    ) -> None:
        self._connect = connect
        self._label = label
        self._on_rollback = on_rollback
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._starts = 0

    @property
    def thread(self) -> threading.Thread | None:
        """The current writer thread (``None`` before the first write and after :meth:`stop`)."""
        return self._thread

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> concurrent.futures.Future[Any]:
        """Queue ``fn(conn, *args)`` for the next transaction; the future holds its result.
        Cancelling the future before the writer reaches it means the write never happens."""
        self._ensure_thread()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put((fn, args, future))
        return future

    async def stop(self, timeout: float) -> None:
        """Let the thread finish what is queued and end; wait up to ``timeout`` seconds."""
        if self._thread is not None:
            if self._thread.is_alive():
                self._queue.put(None)
                await asyncio.to_thread(self._thread.join, timeout)
            self._thread = None

    def _ensure_thread(self) -> None:
        if self.alive():
            return
        with self._lock:
            if self.alive():
                return
            if self._thread is not None:  # it ended without stop(): say so, start another
                log.error("sqlite writer thread of %s had stopped; starting a new one", self._label)
            self._starts += 1
            self._thread = threading.Thread(
                target=self._loop,
                name=f"linqra-sqlite-writer-{self._starts}",
                daemon=True,
            )
            self._thread.start()

    def _loop(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                batch = [item]
                while len(batch) < _MAX_BATCH:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._queue.put(None)
                        break
                    batch.append(nxt)
                try:
                    if conn is None:
                        conn = self._connect()
                    failure = self._commit(conn, batch)
                except BaseException as exc:  # nothing a write does may end the writer
                    log.warning("sqlite writer: %d writes failed: %r", len(batch), exc)
                    failure = exc
                    if conn is not None:
                        _rollback(conn)
                    self._on_rollback()
                    for _, _, future in batch:
                        _settle(future, error=exc)
                if failure is not None and conn is not None and not _is_busy(failure):
                    conn.close()  # a broken file or connection: open it again for the next batch
                    conn = None
        finally:
            if conn is not None:
                conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Job]) -> BaseException | None:
        """Run ``batch`` in one transaction; answer every waiter. Returns what failed the
        transaction itself (then nobody's write happened), else ``None``."""
        results: list[tuple[concurrent.futures.Future[Any], Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, args, future in batch:
                if not future.set_running_or_notify_cancel():
                    continue  # its caller gave up before we got to it: skip the write
                conn.execute("SAVEPOINT w")
                try:
                    value = fn(conn, *args)
                except BaseException as exc:
                    conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
                    self._on_rollback()  # a table created inside the savepoint is gone again
                    results.append((future, None, exc))
                else:
                    conn.execute("RELEASE w")
                    results.append((future, value, None))
            conn.execute("COMMIT")
        except Exception as exc:  # the transaction itself failed: nobody's write happened
            _rollback(conn)
            self._on_rollback()
            for _, _, future in batch:
                _settle(future, error=exc)
            return exc
        for future, value, error in results:
            _settle(future, value, error)
        return None


def _settle(
    future: concurrent.futures.Future[Any], value: Any = None, error: BaseException | None = None
) -> None:
    """Answer a waiter if it still waits; a cancelled or answered one is left alone."""
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
    except concurrent.futures.InvalidStateError:
        pass  # cancelled between the check and the answer


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        log.warning("sqlite writer: rollback failed", exc_info=True)


def _is_busy(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (5, 6)
