"""Typed errors raised by the storage layer.

Everything that can go wrong for a user-facing reason (a bad concept name, a name already taken,
a job that was cancelled meanwhile, ...) raises a subclass of :class:`StorageError` with a message
that can be shown or logged as is. Callers catch the specific subclass they can handle and let the
rest propagate. Raw driver exceptions (``sqlite3``, ``psycopg``) never escape for expected
situations.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error the storage package raises on purpose."""


class DatabaseBusy(StorageError):
    """The database stayed locked by another process for longer than the busy timeout."""


class DatabaseUnavailable(StorageError):
    """The database server cannot be reached (PostgreSQL down, wrong URL, refused login)."""


class DataGone(StorageError):
    """The data directory or the SQLite file this storage opened was removed or replaced
    while in use: anything written now would be lost. The process must stop."""


class Conflict(StorageError):
    """A write broke a uniqueness or reference rule, usually because another process won a race;
    repositories turn it into the specific error (e.g. :class:`ConceptExists`)."""


class SchemaTooNew(StorageError):
    """The database file was written by a newer version of this code; refuse to touch it."""


class InvalidArgument(StorageError):
    """A value passed to the storage API is malformed (unknown kind, bad chat type, ...)."""


class FileTooLarge(InvalidArgument):
    """A file is bigger than the storage accepts in the database (``max_file_bytes``)."""


class InvalidConceptName(InvalidArgument):
    """A concept name breaks the naming rules (see :func:`storage.names.normalize_concept_name`)."""


class UnsafePath(InvalidArgument):
    """A file path is not one the storage generated (absolute, ``..``, unknown area, ...)."""


class NotFound(StorageError):
    """Base class for "no such row" errors."""


class UserNotFound(NotFound):
    """No user with that Telegram id was upserted yet."""


class ChatNotFound(NotFound):
    """No chat with that Telegram id was upserted yet."""


class ConceptNotFound(NotFound):
    """No concept with that id (or it was deleted)."""


class JobNotFound(NotFound):
    """No job with that id."""


class MediaNotFound(NotFound):
    """No stored media with that id."""


class ConceptExists(StorageError):
    """A concept with the same name (case-insensitive) is already usable in that chat/scope."""


class NotAllowed(StorageError):
    """The user may not do this (not the owner, concept not shareable, ...)."""


class JobNotActive(StorageError):
    """The job already finished (done, failed or cancelled), so it cannot be cancelled."""


class LimitReached(StorageError):
    """A new job would pass one of the user's limits; ``limit`` is the number passed."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class TooManyActiveJobs(LimitReached):
    """The user already has as many jobs queued or running as allowed."""


class DailyLimitReached(LimitReached):
    """The user used up today's allowance of this kind of job."""


class LeaseLost(StorageError):
    """The calling worker no longer holds this job: its lease expired and the job was requeued
    (or taken by another worker), or it finished. The worker must drop the job and its result."""


class JobCancelled(LeaseLost):
    """The job the worker is running was cancelled by the user: stop working on it."""
