"""Index of cached photo inversions (the engine's expensive per-photo preprocessing).

An inversion depends on the photo, the model and the inversion mode, so the key is
``(file_unique_id, model_id, mode)``; ``file_unique_id`` is Telegram's stable id for a file, the
same whoever sends it. The files live in ``inversions/``; this index maps keys to them and keeps
``last_used_at`` so :meth:`InversionCache.evict` can drop the least recently used ones.
"""

from __future__ import annotations

import asyncio

from .db import Database
from .errors import InvalidArgument
from .files import Area, DataDir
from .models import InversionEntry
from .rows import from_row

_KEY_WHERE = "file_unique_id = ? AND model_id = ? AND mode = ?"


def _check_key(file_unique_id: str, model_id: str, mode: str) -> tuple[str, str, str]:
    for label, value in (
        ("file_unique_id", file_unique_id),
        ("model_id", model_id),
        ("mode", mode),
    ):
        if not isinstance(value, str) or not value or len(value) > 200:
            raise InvalidArgument(f"{label} must be a non-empty string (at most 200 chars).")
    return file_unique_id, model_id, mode


class InversionCache:
    """Look up, record and evict cached inversions."""

    def __init__(self, db: Database, files: DataDir) -> None:
        self._db = db
        self._files = files

    async def get(self, file_unique_id: str, model_id: str, mode: str) -> InversionEntry | None:
        """Return the cached entry (marking it used) or None on a miss.

        An entry whose file has disappeared is dropped and reported as a miss.
        """
        key = _check_key(file_unique_id, model_id, mode)
        now = self._db.now()
        async with self._db.transaction() as tx:
            row = await tx.one(
                f"UPDATE inversions SET last_used_at = ? WHERE {_KEY_WHERE} RETURNING *",
                (now, *key),
            )
            if row is None:
                return None
            if not self._files.exists(row["path"]):
                await tx.execute(f"DELETE FROM inversions WHERE {_KEY_WHERE}", key)
                return None
        return from_row(InversionEntry, row)

    async def put(self, file_unique_id: str, model_id: str, mode: str, path: str) -> InversionEntry:
        """Record that ``path`` (a file already written in ``inversions/``) holds this key's
        inversion. Replacing an entry deletes the previous file."""
        key = _check_key(file_unique_id, model_id, mode)
        self._files.check(path, Area.INVERSIONS)
        await asyncio.to_thread(self._files.publish, path)
        now = self._db.now()
        async with self._db.transaction() as tx:
            old_path = await tx.value(f"SELECT path FROM inversions WHERE {_KEY_WHERE}", key)
            row = await tx.one(
                """
                INSERT INTO inversions (file_unique_id, model_id, mode, path,
                                        created_at, last_used_at)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (file_unique_id, model_id, mode) DO UPDATE SET
                    path = excluded.path, created_at = excluded.created_at,
                    last_used_at = excluded.last_used_at
                RETURNING *
                """,
                (*key, path, now, now),
            )
        if old_path is not None and old_path != path:
            await asyncio.to_thread(self._files.delete, old_path)
        assert row is not None
        return from_row(InversionEntry, row)

    async def count(self) -> int:
        """Number of cached entries."""
        return int(await self._db.value("SELECT COUNT(*) FROM inversions"))

    async def evict(
        self, *, max_entries: int | None = None, unused_for_s: float | None = None
    ) -> list[str]:
        """Drop entries unused for ``unused_for_s`` seconds, then the least recently used ones
        beyond ``max_entries``; delete their files and return their relative paths."""
        if max_entries is not None and max_entries < 0:
            raise InvalidArgument("max_entries cannot be negative.")
        now = self._db.now()
        async with self._db.transaction() as tx:
            paths: list[str] = []
            if unused_for_s is not None:
                rows = await tx.all(
                    "DELETE FROM inversions WHERE last_used_at < ? RETURNING path",
                    (now - unused_for_s,),
                )
                paths += [row["path"] for row in rows]
            if max_entries is not None:
                rows = await tx.all(
                    """
                    DELETE FROM inversions WHERE path IN (
                        SELECT path FROM (
                            SELECT path, ROW_NUMBER() OVER (
                                ORDER BY last_used_at DESC, created_at DESC, path
                            ) AS rank
                            FROM inversions
                        ) AS ranked
                        WHERE rank > ?
                    ) RETURNING path
                    """,
                    (max_entries,),
                )
                paths += [row["path"] for row in rows]
        await asyncio.to_thread(self._files.delete_many, paths)
        return paths
