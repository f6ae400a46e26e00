"""Per-user daily usage counters (edits per day, stickers per day, ...), for rate limits.

Days are UTC calendar days (``YYYY-MM-DD``) taken from the storage clock. The limit policy lives
in the bot; this module only counts, atomically, so two concurrent requests cannot both slip
under a limit (:meth:`UsageCounter.try_increment`).
"""

from __future__ import annotations

import time

from .db import Database, Session
from .errors import InvalidArgument, UserNotFound

EDIT = "edit"


def utc_day(timestamp: float) -> str:
    """The UTC date of an epoch timestamp, as ``YYYY-MM-DD``."""
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def _check_kind(kind: str) -> str:
    if not isinstance(kind, str) or not 0 < len(kind) <= 32:
        raise InvalidArgument(f"Bad usage counter kind {kind!r}.")
    return kind


class UsageCounter:
    """Count things a user did per UTC day."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def today(self) -> str:
        """Today's UTC date (``YYYY-MM-DD``) by the storage clock."""
        return utc_day(self._db.now())

    async def count(self, user_id: int, kind: str = EDIT, *, day: str | None = None) -> int:
        """How many ``kind`` actions ``user_id`` did on ``day`` (default: today)."""
        value = await self._db.value(
            "SELECT count FROM usage_counters WHERE user_id = ? AND day = ? AND kind = ?",
            (user_id, day or self.today(), _check_kind(kind)),
        )
        return int(value or 0)

    async def increment(self, user_id: int, kind: str = EDIT, amount: int = 1) -> int:
        """Add ``amount`` to today's counter and return the new value."""
        if not isinstance(amount, int) or amount < 1:
            raise InvalidArgument(f"amount must be a positive int, not {amount!r}.")
        async with self._db.transaction() as tx:
            return await _add(tx, user_id, self.today(), _check_kind(kind), amount)

    async def try_increment(
        self, user_id: int, limit: int, kind: str = EDIT, amount: int = 1
    ) -> bool:
        """Add ``amount`` to today's counter only if it stays within ``limit``; return whether
        it did. Check and increment happen in one transaction."""
        if not isinstance(amount, int) or amount < 1:
            raise InvalidArgument(f"amount must be a positive int, not {amount!r}.")
        async with self._db.transaction() as tx:
            return await take_within(tx, user_id, self.today(), kind, limit, amount)


async def take_within(tx: Session, user_id: int, day: str, kind: str, limit: int,
                      amount: int = 1) -> bool:
    """Inside the transaction ``tx``: add ``amount`` to the user's ``kind`` counter of ``day``
    if it stays within ``limit``; return whether it did. The job queue calls it in the
    transaction that queues a job, so a refused job never spends the allowance."""
    kind = _check_kind(kind)
    current = await tx.value(
        "SELECT count FROM usage_counters WHERE user_id = ? AND day = ? AND kind = ?",
        (user_id, day, kind),
    )
    if int(current or 0) + amount > limit:
        return False
    await _add(tx, user_id, day, kind, amount)
    return True


async def _add(tx: Session, user_id: int, day: str, kind: str, amount: int) -> int:
    if await tx.value("SELECT 1 FROM users WHERE id = ?", (user_id,)) is None:
        raise UserNotFound(f"Unknown user {user_id}.")
    value = await tx.value(
        """
        INSERT INTO usage_counters (user_id, day, kind, count) VALUES (?, ?, ?, ?)
        ON CONFLICT (user_id, day, kind) DO UPDATE
        SET count = usage_counters.count + excluded.count
        RETURNING count
        """,
        (user_id, day, kind, amount),
    )
    return int(value)
