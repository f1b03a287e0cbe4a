"""The SQLite store's writer thread: every write of one store, with group commit.

Every write queued while a transaction runs joins the next one (each in its own SAVEPOINT, so
one failing write does not undo the others), and a caller is answered only after its
transaction committed. 100 concurrent writers cost a few commits, not 100 lock hand-offs between
threads.

A caller awaits an asyncio future of its own event loop; the writer answers every waiter of a
batch with one ``call_soon_threadsafe`` per loop (no ``concurrent.futures.Future`` and its
condition variable per write, no ``wrap_future``): the hand-off between the loop and the thread
was half of an inline step's cost (docs/perf/engine-profile.md).

The writer outlives its callers: a write whose caller gave up (cancelled the future) before the
writer reached it is skipped, one the writer already started is committed whole and its answer
dropped. Nothing a write function does can end the thread; should it end anyway, the next
:meth:`GroupCommitWriter.submit` starts a new one. Timeouts and error translation are the
store's (:mod:`linqra.store.sqlite`); this module only runs transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["GroupCommitWriter"]

log = logging.getLogger(__name__)

_MAX_BATCH = 512

_Job = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]
_Answer = tuple["asyncio.Future[Any]", Any, BaseException | None]


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

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue ``fn(conn, *args)`` for the next transaction; the future (of the running event
        loop) holds its result. Cancelling it before the writer reaches it means the write never
        happens."""
        self._ensure_thread()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
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
                    _answer([(future, None, exc) for _, _, future in batch])
                if failure is not None and conn is not None and not _is_busy(failure):
                    conn.close()  # a broken file or connection: open it again for the next batch
                    conn = None
        finally:
            if conn is not None:
                conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Job]) -> BaseException | None:
        """Run ``batch`` in one transaction; answer every waiter. Returns what failed the
        transaction itself (then nobody's write happened), else ``None``."""
        results: list[_Answer] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, args, future in batch:
                if future.cancelled():
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
            _answer([(future, None, exc) for _, _, future in batch])
            return exc
        _answer(results)
        return None


def _answer(answers: list[_Answer]) -> None:
    """Answer the waiters, one call into each of their event loops (from the writer thread)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Answer]] = {}
    for answer in answers:
        by_loop.setdefault(answer[0].get_loop(), []).append(answer)
    for loop, mine in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_settle_all, mine)


def _settle_all(answers: list[_Answer]) -> None:
    """On the waiters' loop: answer each one that still waits (a cancelled one is left alone)."""
    for future, value, error in answers:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        log.warning("sqlite writer: rollback failed", exc_info=True)


def _is_busy(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (5, 6)
