"""The :class:`Storage` facade: opens the data directory and exposes one repository per idea.

Typical use (bot or worker, one instance per process)::

    async with await Storage.open(data_dir) as store:
        await store.users.upsert(user.id, user.full_name, user.username)
        queued = await store.jobs.enqueue("edit", chat_id=chat.id, user_id=user.id, payload={...})

Each process opens its own ``Storage`` on the same directory; they coordinate through SQLite.
"""

from __future__ import annotations

import os
import time
from types import TracebackType
from typing import Any

from .chats import ChatRepo
from .concepts import ConceptRepo
from .db import Clock, Database
from .files import DataDir
from .inversions import InversionCache
from .jobs import DEFAULT_LEASE_S, JobQueue
from .media import MediaRepo
from .migrations import migrate, schema_version
from .usage import UsageCounter
from .users import UserRepo

DEFAULT_BUSY_TIMEOUT_S = 15.0


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
    """

    def __init__(self, db: Database, files: DataDir, *, lease_s: float) -> None:
        """Use :meth:`open` instead; this only wires the repositories together."""
        self._db = db
        self.files = files
        self.users = UserRepo(db)
        self.chats = ChatRepo(db)
        self.concepts = ConceptRepo(db, files)
        self.jobs = JobQueue(db, lease_s=lease_s)
        self.usage = UsageCounter(db)
        self.inversions = InversionCache(db, files)
        self.media = MediaRepo(db, files)
        self._closed = False

    @classmethod
    async def open(
        cls,
        data_dir: str | os.PathLike[str],
        *,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        lease_s: float = DEFAULT_LEASE_S,
        clock: Clock = time.time,
    ) -> Storage:
        """Create the data directory layout if needed, open the database and migrate it.

        ``busy_timeout_s``: how long a write waits for the other process's lock before
        :class:`DatabaseBusy`. ``lease_s``: default job lease. ``clock``: time source (epoch
        seconds), injectable for tests. Raises :class:`SchemaTooNew` for a newer database.
        """
        files = DataDir(data_dir)
        files.ensure()
        files.remove_stale_temp_files()
        db = await Database.connect(files.db_path, busy_timeout_s=busy_timeout_s, clock=clock)
        try:
            await migrate(db)
        except BaseException:
            await db.close()
            raise
        return cls(db, files, lease_s=lease_s)

    async def close(self) -> None:
        """Close the database connection (idempotent)."""
        if not self._closed:
            self._closed = True
            await self._db.close()

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
        """The database schema version (``PRAGMA user_version``)."""
        return await schema_version(self._db)

    async def sqlite_settings(self) -> dict[str, Any]:
        """The connection's effective SQLite settings, for health checks and tests:
        ``journal_mode``, ``foreign_keys``, ``busy_timeout`` (ms), ``synchronous``."""
        settings: dict[str, Any] = {}
        for pragma in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous"):
            settings[pragma] = await self._db.value(f"PRAGMA {pragma}")
        return settings
