"""The bot's own small state that must outlive a restart: conversation states and per-user
data of python-telegram-bot's persistence (see ``bot/persistence.py``).

Entries are JSON objects under a ``(kind, key)`` pair, e.g. ``("conversation:learn", "12:34")``
or ``("user_data", "34")``. Writes replace the whole value; there is no partial update.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .db import Database, dump_json, load_json
from .errors import InvalidArgument


def _check(kind: str, key: str) -> None:
    for label, value in (("kind", kind), ("key", key)):
        if not isinstance(value, str) or not 0 < len(value) <= 200:
            raise InvalidArgument(f"bot state {label} must be a short non-empty string.")


class BotStateRepo:
    """Load, write and drop the bot's persisted entries."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def load(self, kind: str) -> dict[str, dict[str, Any]]:
        """Every entry of ``kind``, by key."""
        _check(kind, "-")
        rows = await self._db.all("SELECT key, value FROM bot_state WHERE kind = ?", (kind,))
        return {row["key"]: load_json(row["value"]) or {} for row in rows}

    async def put(self, kind: str, key: str, value: Mapping[str, Any]) -> None:
        """Write (or replace) one entry."""
        _check(kind, key)
        text = dump_json(value, "bot state")
        async with self._db.transaction() as tx:
            await tx.execute(
                """
                INSERT INTO bot_state (kind, key, value, updated_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (kind, key) DO UPDATE
                SET value = excluded.value, updated_at = excluded.updated_at
                """,
                (kind, key, text, self._db.now()),
            )

    async def drop(self, kind: str, key: str) -> None:
        """Remove one entry (nothing happens if there is none)."""
        _check(kind, key)
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM bot_state WHERE kind = ? AND key = ?", (kind, key))
