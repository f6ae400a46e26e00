"""Telegram users the bot has seen.

The bot upserts the sender of every update it handles, so rows referenced by concepts, jobs and
counters (foreign keys) always exist and names stay fresh.
"""

from __future__ import annotations

from .db import Database
from .errors import InvalidArgument, UserNotFound
from .models import StoredUser
from .rows import from_row, one_row


class UserRepo:
    """Create, refresh and read users."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(self, user_id: int, name: str = "", username: str | None = None) -> StoredUser:
        """Insert the user or refresh their display name and @username; return the row."""
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            raise InvalidArgument(f"user_id must be an int, not {user_id!r}.")
        now = self._db.now()
        async with self._db.transaction() as tx:
            row = await tx.one(
                """
                INSERT INTO users (id, name, username, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET
                    name = excluded.name, username = excluded.username,
                    updated_at = excluded.updated_at
                RETURNING *
                """,
                (user_id, name or "", username or None, now, now),
            )
        assert row is not None
        return from_row(StoredUser, row)

    async def get(self, user_id: int) -> StoredUser:
        """Return the user or raise :class:`UserNotFound`."""
        return await one_row(self._db, StoredUser, "SELECT * FROM users WHERE id = ?",
                             (user_id,), UserNotFound(f"Unknown user {user_id}."))
