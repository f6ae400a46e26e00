"""What an operator's health checks and metrics read from the database: is it reachable, and
how many jobs are in each state.

Read-only and cheap (one grouped count over the jobs table), so a health probe or a metrics
scrape every few seconds costs the queue nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from .db import Database
from .errors import DatabaseUnavailable, StorageError
from .store import Storage


@dataclass(frozen=True)
class JobCount:
    """How many jobs of one kind are in one state."""

    kind: str
    state: str
    count: int


class QueueStats:
    """Health and counts of one storage's database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    def of(cls, storage: Storage) -> QueueStats:
        """The statistics of an opened storage's database."""
        return cls(storage._db)  # the package's own object: the database stays private outside

    async def check(self, timeout_s: float = 2.0) -> None:
        """Raise :class:`DatabaseUnavailable` when the database does not answer a query within
        `timeout_s` (a PostgreSQL server that is gone makes a connection pool wait, not fail),
        or when the SQLite file is no longer where it was opened (a process writing into a
        file that was deleted loses everything it writes)."""
        if self._db.dialect == "sqlite" and not Path(self._db.path).exists():
            raise DatabaseUnavailable(f"the database file {self._db.path} is gone")
        try:
            await asyncio.wait_for(self._db.value("SELECT 1"), timeout_s)
        except TimeoutError:
            raise DatabaseUnavailable(f"the database did not answer within {timeout_s:g} s"
                                      ) from None
        except StorageError:
            raise
        except Exception as exc:  # the driver's own error: the connection is broken
            raise DatabaseUnavailable(f"the database does not answer: {exc}") from exc

    async def jobs_by_state(self) -> list[JobCount]:
        """Every (kind, state) pair present in the jobs table with its count."""
        rows = await self._db.all(
            "SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state ORDER BY kind, state")
        return [JobCount(row[0], row[1], int(row[2])) for row in rows]

    async def waiting(self) -> int:
        """Jobs queued and due now: the queue's depth."""
        now = self._db.now()
        return int(await self._db.value(
            "SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND run_after <= ?", (now,)) or 0)
