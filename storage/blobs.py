"""File contents kept in the database, so hosts that share nothing but the database URL see the
same photos, concept files, inversions and results.

With PostgreSQL every stored file also lives in the ``files`` table (path, size, bytes); each
host's data directory is then only a local cache that :class:`storage.files.DataDir` fills on
first use and writes through. Files at our sizes (photos up to Telegram's 20 MB, concept files
of kilobytes, inversions of a few megabytes) fit ``bytea`` well, and one store that every host
already reaches beats running a second one. ``max_bytes`` bounds what one file may take;
:meth:`BlobStore.purge` drops old files (the retention setting).

The methods block (psycopg's synchronous API on a dedicated connection): they are called where
files are read and written, from worker threads or briefly from the event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import psycopg

from oneword.limits import MAX_STORED_FILE_BYTES

from .errors import DatabaseUnavailable, FileTooLarge
from .pg import connect_sync, sql_params


class BlobStore:
    """The ``files`` table of a PostgreSQL database, on one blocking connection."""

    def __init__(self, url: str, *, max_bytes: int = MAX_STORED_FILE_BYTES,
                 clock: Callable[[], float] = time.time) -> None:
        self._url = url
        self.max_bytes = int(max_bytes)
        self._clock = clock
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def _run(self, sql: str, params: Iterable[Any] = ()) -> psycopg.Cursor[Any]:
        """Run one statement, reconnecting once if the connection dropped (server restart)."""
        for attempt in (1, 2):
            if self._conn is None or self._conn.closed:
                self._conn = connect_sync(self._url)
            try:
                return self._conn.execute(*sql_params(sql, list(params)))
            except psycopg.OperationalError as exc:
                self._conn.close()
                self._conn = None
                if attempt == 2:
                    raise DatabaseUnavailable(f"Database unavailable: {exc}") from exc
        raise AssertionError("unreachable")

    def has(self, path: str) -> bool:
        """True if the database holds ``path``."""
        with self._lock:
            return self._run("SELECT 1 FROM files WHERE path = ?", (path,)).fetchone() is not None

    def get(self, path: str) -> bytes | None:
        """The bytes of ``path``, or None if the database does not hold it."""
        with self._lock:
            row = self._run("SELECT data FROM files WHERE path = ?", (path,)).fetchone()
        return None if row is None else bytes(row[0])

    def put(self, path: str, data: bytes) -> None:
        """Store ``data`` as ``path`` (replacing it). Raises :class:`FileTooLarge`."""
        if len(data) > self.max_bytes:
            raise FileTooLarge(
                f"{path} is {len(data) / 1e6:.1f} MB; the database takes files up to "
                f"{self.max_bytes / 1e6:.1f} MB."
            )
        with self._lock:
            self._run(
                """
                INSERT INTO files (path, size, data, created_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (path) DO UPDATE SET size = excluded.size, data = excluded.data
                """,
                (path, len(data), data, float(self._clock())),
            )

    def delete(self, paths: Iterable[str]) -> int:
        """Delete these files from the database; return how many it held."""
        wanted = list(paths)
        if not wanted:
            return 0
        with self._lock:
            return self._run("DELETE FROM files WHERE path = ANY(?)", (wanted,)).rowcount

    def purge(self, prefix: str, older_than: float) -> list[str]:
        """Delete files whose path starts with ``prefix`` stored before ``older_than`` (epoch
        seconds by the storage clock); return their paths."""
        with self._lock:
            rows = self._run(
                "DELETE FROM files WHERE starts_with(path, ?) AND created_at < ? RETURNING path",
                (prefix, older_than),
            ).fetchall()
        return [row[0] for row in rows]

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
