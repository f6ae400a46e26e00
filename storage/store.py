"""The :class:`Storage` facade: opens the data directory and exposes one repository per idea.

Typical use (bot or worker, one instance per process)::

    async with await Storage.open(data_dir) as store:
        await store.users.upsert(user.id, user.full_name, user.username)
        queued = await store.jobs.enqueue("edit", chat_id=chat.id, user_id=user.id, payload={...})

Each process opens its own ``Storage`` on the same directory; they coordinate through SQLite.
With ``database_url="postgresql://..."`` they share a PostgreSQL database instead, from any
number of hosts, each with a data directory of its own (a cache; see :mod:`storage.blobs`).
"""

from __future__ import annotations

import asyncio
import os
import time
from types import TracebackType
from typing import Any

from oneword.limits import MAX_STORED_FILE_BYTES

from .botstate import BotStateRepo
from .chats import ChatRepo
from .concepts import ConceptRepo
from .db import Clock, Database
from .errors import InvalidArgument, StorageError
from .files import Area, DataDir
from .inbox import UpdateInbox
from .inversions import InversionCache
from .jobs import DEFAULT_LEASE_S, JobQueue
from .media import MediaRepo
from .migrations import migrate, schema_version
from .presence import PresenceGuard
from .usage import UsageCounter
from .users import UserRepo

DEFAULT_BUSY_TIMEOUT_S = 15.0
# A write waits this long in all for another process's lock (a backup, a maintenance script)
# before it fails: a user's request during such a lock is stored when the lock ends.
DEFAULT_LOCK_PATIENCE_S = 600.0


class Storage:
    """Everything persistent: the database and the files of one data directory.

    Attributes (all share one connection):

    * ``files`` -- :class:`storage.files.DataDir`, the directory layout and file helpers
    * ``users`` -- :class:`storage.users.UserRepo`
    * ``chats`` -- :class:`storage.chats.ChatRepo`
    * ``concepts`` -- :class:`storage.concepts.ConceptRepo` (privacy rules live there)
    * ``jobs`` -- :class:`storage.jobs.JobQueue`
    * ``usage`` -- :class:`storage.usage.UsageCounter`
    * ``inversions`` -- :class:`storage.inversions.InversionCache`
    * ``media`` -- :class:`storage.media.MediaRepo`
    * ``bot_state`` -- :class:`storage.botstate.BotStateRepo` (the bot's persistence)
    * ``inbox`` -- :class:`storage.inbox.UpdateInbox` (updates kept until handled)
    """

    def __init__(self, db: Database, files: DataDir, *, lease_s: float) -> None:
        """Use :meth:`open` instead; this only wires the repositories together."""
        self._db = db
        self.files = files
        self.users = UserRepo(db)
        self.chats = ChatRepo(db)
        self.concepts = ConceptRepo(db, files)
        self.jobs = JobQueue(db, lease_s=lease_s, files=files)
        self.usage = UsageCounter(db)
        self.inversions = InversionCache(db, files)
        self.media = MediaRepo(db, files)
        self.bot_state = BotStateRepo(db)
        self.inbox = UpdateInbox(db)
        self._closed = False
        self._guard: PresenceGuard | None = None

    @classmethod
    async def open(
        cls,
        data_dir: str | os.PathLike[str],
        *,
        database_url: str | None = None,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        lock_patience_s: float = DEFAULT_LOCK_PATIENCE_S,
        lease_s: float = DEFAULT_LEASE_S,
        max_file_bytes: int = MAX_STORED_FILE_BYTES,
        clock: Clock = time.time,
    ) -> Storage:
        """Create the data directory layout if needed, open the database and migrate it.

        ``database_url``: empty or None for the SQLite file in the data directory (the
        default); ``postgresql://user:password@host:port/dbname`` for a PostgreSQL database
        shared by hosts (files then travel through it, up to ``max_file_bytes`` each).
        ``busy_timeout_s``: how long one try of a write waits for another process's lock;
        ``lock_patience_s``: how long, in all, a write on the SQLite file waits for such a
        lock (a try every busy timeout, each logged) before :class:`DatabaseBusy`.
        ``lease_s``: default job lease. ``clock``: time source (epoch seconds), injectable for
        tests. Raises :class:`SchemaTooNew` for a newer database, :class:`DatabaseUnavailable`
        when PostgreSQL cannot be reached.
        """
        if database_url and not database_url.startswith(("postgresql://", "postgres://")):
            raise InvalidArgument(
                "The database URL must start with postgresql:// (or be empty for SQLite)."
            )
        if database_url:
            from .blobs import BlobStore  # psycopg is only needed with PostgreSQL
            from .pg import PgDatabase

            db: Database = await PgDatabase.connect(  # type: ignore[assignment]
                database_url, busy_timeout_s=busy_timeout_s, clock=clock)
            files = DataDir(data_dir, BlobStore(database_url, max_bytes=max_file_bytes,
                                                clock=clock))
        else:
            files = DataDir(data_dir)
        files.ensure()
        files.remove_stale_temp_files()
        if not database_url:
            db = await Database.connect(files.db_path, busy_timeout_s=busy_timeout_s,
                                        clock=clock, lock_patience_s=lock_patience_s)
        try:
            guard = PresenceGuard(files.root, None if database_url else files.db_path)
            if not database_url:
                db.guard = guard
            await migrate(db)
        except BaseException:
            await db.close()
            raise
        store = cls(db, files, lease_s=lease_s)
        store._guard = guard
        return store

    def check_present(self) -> None:
        """Raise :class:`DataGone` if the data directory or the SQLite file was removed or
        replaced since :meth:`open` (see :mod:`storage.presence`); the bot and the worker call
        it periodically and stop on it."""
        if self._guard is not None:
            self._guard.check()

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._db.dialect

    async def close(self) -> None:
        """Close the database connection (idempotent)."""
        if not self._closed:
            self._closed = True
            await self._db.close()
            if self.files.blobs is not None:
                self.files.blobs.close()

    async def apply_retention(self, retention_s: float) -> int:
        """Delete what is older than the retention period and no longer needed: photos and
        results not kept by a concept or an unfinished job, inversions unused that long,
        result files in the shared database, and this host's cached copies of database files.
        Returns how many files went. Run it now and then (the worker does, hourly)."""
        if not retention_s > 0:
            raise InvalidArgument(f"retention must be a positive number of seconds, not "
                                  f"{retention_s!r}.")
        gone = len(await self.media.purge_older_than(retention_s))
        gone += len(await self.inversions.evict(unused_for_s=retention_s))
        if self.files.blobs is not None:
            cutoff = self._db.now() - retention_s
            old = await asyncio.to_thread(self.files.blobs.purge, f"{Area.RESULTS.value}/",
                                          cutoff)
            await asyncio.to_thread(self.files.delete_many, old)
            gone += len(old)
            gone += await asyncio.to_thread(self.files.prune_cache, retention_s)
        else:
            gone += await asyncio.to_thread(self.files.prune_area, Area.RESULTS, retention_s)
        return gone

    async def __aenter__(self) -> Storage:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def schema_version(self) -> int:
        """The database schema version."""
        return await schema_version(self._db)

    async def sqlite_settings(self) -> dict[str, Any]:
        """The connection's effective SQLite settings, for health checks and tests:
        ``journal_mode``, ``foreign_keys``, ``busy_timeout`` (ms), ``synchronous``."""
        if self.backend != "sqlite":
            raise StorageError("sqlite_settings: this storage runs on PostgreSQL.")
        settings: dict[str, Any] = {}
        for pragma in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous"):
            settings[pragma] = await self._db.value(f"PRAGMA {pragma}")
        return settings
