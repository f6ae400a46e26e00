"""The SQLite connection: pragmas, serialization of access and transactions.

This is the embedded default backend; :mod:`storage.pg` is the PostgreSQL one with the same
methods (``Database``/``Session`` below define them), so every repository runs on both. SQL in
the repositories is written once, in the subset both understand, with ``?`` / ``:name``
parameters; :mod:`storage.pg` translates the parameter style.

One :class:`Database` wraps one aiosqlite connection. The bot process and the worker process each
open their own, on the same file; SQLite's WAL mode lets readers and one writer work at once, and
``busy_timeout`` makes a writer wait (in aiosqlite's thread, not blocking the event loop) instead
of failing when the other process holds the write lock.

Inside one process many asyncio tasks share the connection, so every access goes through an
``asyncio.Lock``: otherwise a statement of one task could land in the middle of another task's
transaction. Write transactions use ``BEGIN IMMEDIATE`` so they take the write lock up front; a
deferred transaction that later upgrades can fail with SQLITE_BUSY without waiting, which is how
concurrent claimers would otherwise trip over each other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, Protocol

import aiosqlite

from .errors import Conflict, DatabaseBusy, InvalidArgument, StorageError
from .presence import PresenceGuard

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Params = Sequence[Any] | Mapping[str, Any]


class Row(Protocol):
    """A result row of either backend: columns by name (``row["id"]``) or position (``row[0]``)."""

    def __getitem__(self, key: int | str, /) -> Any: ...


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class RowQueries:
    """`one` and `value` on top of a session's `all`, the same for both backends."""

    async def all(self, sql: str, params: Params = ()) -> list[Any]:
        raise NotImplementedError

    async def one(self, sql: str, params: Params = ()) -> Any:
        """Run a query and return its first row, or None."""
        rows = await self.all(sql, params)
        return rows[0] if rows else None

    async def value(self, sql: str, params: Params = ()) -> Any:
        """Run a query and return the first column of its first row, or None."""
        row = await self.one(sql, params)
        return None if row is None else row[0]


class Session(RowQueries):
    """Statement helpers bound to the connection while the :class:`Database` lock is held.

    Obtained from :meth:`Database.transaction` or :meth:`Database.read`; never kept beyond the
    ``async with`` block.
    """

    # Appended to a SELECT that picks rows to change, so concurrent transactions skip rows
    # another one holds instead of waiting (PostgreSQL); SQLite has one writer at a time anyway.
    skip_locked = ""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement and return the number of rows it changed."""
        try:
            async with self._conn.execute(sql, params) as cursor:
                return cursor.rowcount
        except sqlite3.IntegrityError as exc:
            raise Conflict(str(exc)) from exc

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run an INSERT into a table with an ``id`` key and return the new row's id."""
        try:
            async with self._conn.execute(sql, params) as cursor:
                rowid = cursor.lastrowid
        except sqlite3.IntegrityError as exc:
            raise Conflict(str(exc)) from exc
        if rowid is None:  # pragma: no cover - sqlite always sets it after an INSERT
            raise StorageError("INSERT did not produce a row id")
        return rowid

    async def all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Run a query (or a statement with RETURNING) and return every row."""
        try:
            return list(await self._conn.execute_fetchall(sql, params))
        except sqlite3.IntegrityError as exc:
            raise Conflict(str(exc)) from exc

    async def notify(self, channel: str, payload: str = "") -> None:
        """Wake processes waiting in :meth:`Database.wait_for_notice` once this transaction
        commits. SQLite cannot signal other processes: they poll, so this does nothing."""

    async def schema_version(self) -> int:
        """The schema version recorded in the database (0 when empty)."""
        return int(await self.value("PRAGMA user_version"))

    async def set_schema_version(self, version: int) -> None:
        """Record the schema version (inside the migration's transaction)."""
        await self.execute(f"PRAGMA user_version = {int(version)}")

    async def ddl(self, statement: str) -> None:
        """Run one schema statement of :mod:`storage.migrations` (written in SQLite's types)."""
        await self.execute(statement)


async def _switch_to_wal(conn: aiosqlite.Connection, busy_timeout_s: float) -> str:
    """Set WAL journaling and return the mode in force.

    SQLite answers "database is locked" at once, without its busy handler, when two
    connections switch a brand-new file to WAL together; so we retry here until the busy
    timeout, as the busy handler would.
    """
    deadline = time.monotonic() + busy_timeout_s
    delay = 0.005
    while True:
        try:
            rows = await conn.execute_fetchall("PRAGMA journal_mode = WAL")
            return str(next(iter(rows))[0]).lower()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


class Database:
    """An open SQLite database file with the project's connection settings."""

    dialect = "sqlite"
    notifies = False  # other processes learn about new jobs by polling

    def __init__(self, conn: aiosqlite.Connection, path: Path, clock: Clock,
                 lock_patience_s: float = 0.0) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self._session = Session(conn)
        self.path = path
        self.clock = clock
        self.lock_patience_s = lock_patience_s
        self.guard: PresenceGuard | None = None  # set by the storage: checked before each write

    @classmethod
    async def connect(cls, path: Path, *, busy_timeout_s: float, clock: Clock,
                      lock_patience_s: float = 0.0) -> Database:
        """Open ``path`` (created if missing) with WAL, foreign keys and a busy timeout.

        ``lock_patience_s``: how long a write transaction waits, in all, for another process
        that holds the database locked (each try waits ``busy_timeout_s``), logging as it
        waits, before it raises :class:`DatabaseBusy`."""
        conn = await aiosqlite.connect(str(path), timeout=busy_timeout_s, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            await conn.execute("PRAGMA foreign_keys = ON")
            mode = await _switch_to_wal(conn, busy_timeout_s)
            if mode != "wal":
                raise StorageError(f"{path}: could not switch to WAL mode (got {mode!r}).")
            # FULL: a committed job or concept survives a power cut, not only a process crash.
            await conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.OperationalError as exc:
            await conn.close()
            if _is_busy(exc):
                raise DatabaseBusy(f"{path} is locked by another process: {exc}") from exc
            raise StorageError(f"Cannot open database {path}: {exc}") from exc
        except BaseException:
            await conn.close()
            raise
        return cls(conn, path, clock, lock_patience_s)

    async def close(self) -> None:
        """Close the connection (waits for a running statement to finish)."""
        async with self._lock:
            await self._conn.close()

    def now(self) -> float:
        """Current time from the injected clock (epoch seconds)."""
        return float(self.clock())

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Session]:
        """Serialize access for autocommit reads (each statement sees a consistent snapshot)."""
        async with self._lock:
            try:
                yield self._session
            except sqlite3.OperationalError as exc:
                if _is_busy(exc):
                    raise DatabaseBusy(f"Database is busy: {exc}") from exc
                raise

    async def wait_for_notice(self, channel: str, key: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a :meth:`Session.notify` on ``channel``; return
        whether one came. ``key`` names the waiter (each sees every notice once). SQLite has no
        notices, so this only sleeps: the caller polls."""
        await asyncio.sleep(timeout)
        return False

    @asynccontextmanager
    async def transaction(self, *, concurrent: bool = False) -> AsyncIterator[Session]:
        """A write transaction: ``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error.

        Write transactions run one at a time. ``concurrent=True`` marks a transaction written
        to stay correct alongside other writers (row locks, conditional updates, ``skip_locked``):
        PostgreSQL then lets it run in parallel; SQLite serializes it all the same.
        """
        async with self._lock:
            try:
                # BEGIN is inside the try: if the task is cancelled while BEGIN waits for the
                # other process's lock, BEGIN still completes in aiosqlite's thread, and the
                # ROLLBACK queued behind it must end that transaction.
                await self._begin()
                yield self._session
                await self._conn.execute("COMMIT")
            except BaseException as exc:
                await self._rollback()
                if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                    raise DatabaseBusy(f"Database is busy: {exc}") from exc
                raise

    async def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, waiting out a lock held by another process (a backup, a
        maintenance script) for up to ``lock_patience_s``: a long lock delays a write, it does
        not fail it. Each try waits the busy timeout; every failed try is logged."""
        if self.guard is not None:
            self.guard.check()  # never write into a file that was deleted under us
        started = time.monotonic()
        while True:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                waited = time.monotonic() - started
                if not _is_busy(exc) or waited >= self.lock_patience_s:
                    raise
                log.warning("database %s locked by another process for %.0f s; still waiting",
                            self.path, waited)

    async def _rollback(self) -> None:
        # Queued behind any statement still running in aiosqlite's thread (e.g. after a task
        # cancellation), so it always applies to this transaction. "No transaction" is fine:
        # SQLite may already have rolled back on its own after an error.
        with suppress(sqlite3.OperationalError):
            await self._conn.execute("ROLLBACK")

    async def one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        """Shortcut: a single-row read outside any transaction."""
        async with self.read() as session:
            return await session.one(sql, params)

    async def all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Shortcut: a multi-row read outside any transaction."""
        async with self.read() as session:
            return await session.all(sql, params)

    async def value(self, sql: str, params: Params = ()) -> Any:
        """Shortcut: a single-value read outside any transaction."""
        async with self.read() as session:
            return await session.value(sql, params)


def dump_json(value: Mapping[str, Any] | None, what: str) -> str | None:
    """Encode a JSON object column; raise :class:`InvalidArgument` if it is not serializable."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{what} must be a JSON object (a dict), not {type(value).__name__}.")
    try:
        return json.dumps(dict(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{what} is not JSON-serializable: {exc}") from exc


def load_json(text: str | None) -> dict[str, Any] | None:
    """Decode a JSON object column (None stays None)."""
    return None if text is None else json.loads(text)


def placeholders(count: int) -> str:
    """``?, ?, ?`` for an ``IN (...)`` list of ``count`` items."""
    return ", ".join("?" * count)
