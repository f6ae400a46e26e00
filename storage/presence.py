"""Noticing that the data under a running process vanished or was replaced.

A process keeps the SQLite file open: if the data directory is deleted (or swapped for
another), SQLite goes on writing into the unlinked file and every later write is lost without
an error. :class:`PresenceGuard` remembers which directory and which database file (device and
inode) the storage opened, and :meth:`PresenceGuard.check` raises :class:`DataGone` as soon as
either is gone or is no longer the same one. The storage checks before every write
transaction; the bot and the worker also check periodically and stop on :class:`DataGone`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DataGone

Identity = tuple[int, int]  # (st_dev, st_ino)
CHECK_EVERY_S = 1.0  # how often a running process checks, besides before each write


def _identity(path: Path) -> Identity | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


class PresenceGuard:
    """The data directory (and the SQLite file, if any) as they were when opened."""

    def __init__(self, root: Path, db_file: Path | None = None) -> None:
        """Remember ``root`` and ``db_file`` as they are now (both must exist)."""
        self._watched: list[tuple[str, Path, Identity | None]] = [
            ("data directory", root, _identity(root))]
        if db_file is not None:
            self._watched.append(("database file", db_file, _identity(db_file)))
        for what, path, identity in self._watched:
            if identity is None:
                raise DataGone(f"the {what} {path} does not exist")

    def check(self) -> None:
        """Raise :class:`DataGone` if the directory or the database file was removed or
        replaced since the storage opened it. Costs a ``stat`` per path."""
        for what, path, identity in self._watched:
            now = _identity(path)
            if now is None:
                raise DataGone(f"the {what} {path} was removed while in use")
            if now != identity:
                raise DataGone(f"the {what} {path} was replaced by another while in use")
