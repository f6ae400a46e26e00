"""Stored media: photos users sent and images the bot produced, with who they belong to.

Recording every stored image lets the storage delete a concept's training photos with the
concept, purge old inputs and results on a retention schedule, and avoid downloading the same
Telegram photo twice for the same user. Files are written with :class:`storage.files.DataDir`
first, then recorded here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from .db import Database, placeholders
from .errors import ChatNotFound, InvalidArgument, JobNotFound, MediaNotFound, UserNotFound
from .files import Area, DataDir
from .models import Media, MediaKind
from .rows import from_row, one_row

_AREA_OF_KIND = {MediaKind.PHOTO: Area.PHOTOS, MediaKind.RESULT: Area.RESULTS}


def parse_media_kind(value: MediaKind | str) -> MediaKind:
    """Return ``value`` as a :class:`MediaKind` or raise :class:`InvalidArgument`."""
    try:
        return MediaKind(value)
    except ValueError:
        raise InvalidArgument(f"Unknown media kind {value!r}: expected photo or result.") from None


class MediaRepo:
    """Record, find and purge stored images."""

    def __init__(self, db: Database, files: DataDir) -> None:
        self._db = db
        self._files = files

    async def add(
        self,
        path: str,
        kind: MediaKind | str,
        *,
        user_id: int,
        chat_id: int,
        file_unique_id: str | None = None,
        job_id: int | None = None,
    ) -> Media:
        """Record a stored file: ``photo`` paths live in ``photos/``, ``result`` in ``results/``.

        ``job_id`` links the file to the job that uses or produced it (see :meth:`link_job`).
        Raises :class:`UnsafePath`, :class:`UserNotFound`, :class:`ChatNotFound`,
        :class:`JobNotFound`.
        """
        media_kind = parse_media_kind(kind)
        self._files.check(path, _AREA_OF_KIND[media_kind])
        await asyncio.to_thread(self._files.publish, path)
        now = self._db.now()
        async with self._db.transaction() as tx:
            if await tx.value("SELECT 1 FROM users WHERE id = ?", (user_id,)) is None:
                raise UserNotFound(f"Unknown user {user_id}.")
            if await tx.value("SELECT 1 FROM chats WHERE id = ?", (chat_id,)) is None:
                raise ChatNotFound(f"Unknown chat {chat_id}.")
            if (
                job_id is not None
                and await tx.value("SELECT 1 FROM jobs WHERE id = ?", (job_id,)) is None
            ):
                raise JobNotFound(f"Job {job_id} does not exist.")
            row = await tx.one(
                """
                INSERT INTO media (path, kind, user_id, chat_id, file_unique_id, job_id,
                                   created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *
                """,
                (path, media_kind.value, user_id, chat_id, file_unique_id, job_id, now),
            )
        assert row is not None
        return from_row(Media, row)

    async def link_job(self, media_ids: Sequence[int], job_id: int) -> None:
        """Link already recorded media to a job (e.g. a learn job's photos, recorded before the
        job existed), so retention never purges inputs of a job still queued or running."""
        ids = sorted(set(media_ids))
        async with self._db.transaction() as tx:
            if await tx.value("SELECT 1 FROM jobs WHERE id = ?", (job_id,)) is None:
                raise JobNotFound(f"Job {job_id} does not exist.")
            if ids:
                changed = await tx.execute(
                    f"UPDATE media SET job_id = ? WHERE id IN ({placeholders(len(ids))})",
                    [job_id, *ids],
                )
                if changed != len(ids):
                    raise MediaNotFound("Some media ids do not exist.")

    async def get(self, media_id: int) -> Media:
        """Return a media row or raise :class:`MediaNotFound`."""
        return await one_row(self._db, Media, "SELECT * FROM media WHERE id = ?", (media_id,),
                             MediaNotFound(f"Media {media_id} does not exist."))

    async def find(self, *, user_id: int, file_unique_id: str) -> Media | None:
        """The newest stored copy of a Telegram file sent by ``user_id`` that is still on disk."""
        rows = await self._db.all(
            """
            SELECT * FROM media WHERE user_id = ? AND file_unique_id = ?
            ORDER BY id DESC
            """,
            (user_id, file_unique_id),
        )
        for row in rows:
            if self._files.exists(row["path"]):
                return from_row(Media, row)
        return None

    async def for_concept(self, concept_id: int) -> list[Media]:
        """The photos a concept was learned from."""
        rows = await self._db.all(
            "SELECT * FROM media WHERE concept_id = ? ORDER BY id", (concept_id,)
        )
        return [from_row(Media, row) for row in rows]

    async def delete(self, media_ids: Sequence[int]) -> list[str]:
        """Delete media rows not attached to a concept, and their files; return the paths."""
        ids = sorted(set(media_ids))
        if not ids:
            return []
        async with self._db.transaction() as tx:
            rows = await tx.all(
                f"""
                DELETE FROM media WHERE id IN ({placeholders(len(ids))}) AND concept_id IS NULL
                RETURNING path
                """,
                ids,
            )
        paths = [row["path"] for row in rows]
        await asyncio.to_thread(self._files.delete_many, paths)
        return paths

    async def purge_older_than(
        self, age_s: float, kinds: Sequence[MediaKind | str] = (MediaKind.PHOTO, MediaKind.RESULT)
    ) -> list[str]:
        """Retention: delete media older than ``age_s`` seconds that no concept needs and whose
        job (if any) is finished; remove their files and return their paths."""
        kind_values = [parse_media_kind(kind).value for kind in kinds]
        if not kind_values:
            return []
        cutoff = self._db.now() - age_s
        async with self._db.transaction() as tx:
            rows = await tx.all(
                f"""
                DELETE FROM media
                WHERE created_at < ? AND concept_id IS NULL
                  AND kind IN ({placeholders(len(kind_values))})
                  AND (job_id IS NULL OR job_id NOT IN
                       (SELECT id FROM jobs WHERE state IN ('queued', 'running')))
                RETURNING path
                """,
                [cutoff, *kind_values],
            )
        paths = [row["path"] for row in rows]
        await asyncio.to_thread(self._files.delete_many, paths)
        return paths
