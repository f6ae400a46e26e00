"""The bot's inbox: every Telegram update, kept from the moment it arrives until it is handled.

Telegram forgets an update once the bot confirms it (the next ``getUpdates`` offset, or the
webhook's answer). The bot confirms an update only after :meth:`UpdateInbox.add` stored it, and
marks it handled (:meth:`UpdateInbox.mark_handled`) when its handlers finished; a bot killed in
between finds it in :meth:`UpdateInbox.unhandled` when it starts again. Each update is stored
once: a second delivery of the same ``update_id`` is recognised and dropped.

Handled updates are kept a while (:meth:`UpdateInbox.prune`) so a late duplicate is still
recognised, then removed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .db import Database
from .errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class InboxUpdate:
    """One stored update: its id, Telegram's JSON, and how often it was replayed already."""

    update_id: int
    body: dict[str, Any]
    replays: int


def _check_id(update_id: int) -> int:
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        raise InvalidArgument(f"update_id must be an int, not {update_id!r}.")
    return update_id


class UpdateInbox:
    """Store, list, replay and retire the bot's incoming updates."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, update_id: int, body: dict[str, Any]) -> bool:
        """Store one update; False if this ``update_id`` was stored before (a redelivery)."""
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                """
                INSERT INTO update_inbox (update_id, body, received_at) VALUES (?, ?, ?)
                ON CONFLICT (update_id) DO NOTHING
                """,
                (_check_id(update_id), text, self._db.now()),
            )
        return changed == 1

    async def unhandled(self) -> list[InboxUpdate]:
        """The updates stored but not marked handled, oldest first."""
        rows = await self._db.all(
            "SELECT update_id, body, replays FROM update_inbox WHERE handled_at IS NULL"
            " ORDER BY update_id")
        return [InboxUpdate(row["update_id"], json.loads(row["body"]), row["replays"])
                for row in rows]

    async def count_unhandled(self) -> int:
        """How many stored updates wait to be handled."""
        return int(await self._db.value(
            "SELECT COUNT(*) FROM update_inbox WHERE handled_at IS NULL"))

    async def count(self) -> int:
        """How many updates are stored (handled or not)."""
        return int(await self._db.value("SELECT COUNT(*) FROM update_inbox"))

    async def replaying(self, update_id: int) -> None:
        """Count one more replay of an unhandled update (a bot that keeps dying on one update
        gives up on it after a few, see :meth:`mark_handled`)."""
        async with self._db.transaction() as tx:
            await tx.execute("UPDATE update_inbox SET replays = replays + 1 WHERE update_id = ?",
                             (_check_id(update_id),))

    async def mark_handled(self, update_id: int) -> None:
        """Record that the update's handlers finished (or that it is given up on)."""
        async with self._db.transaction() as tx:
            await tx.execute(
                "UPDATE update_inbox SET handled_at = ? WHERE update_id = ? AND handled_at IS NULL",
                (self._db.now(), _check_id(update_id)))

    async def prune(self, older_than_s: float) -> int:
        """Remove handled updates handled more than ``older_than_s`` seconds ago; how many."""
        async with self._db.transaction() as tx:
            return await tx.execute(
                "DELETE FROM update_inbox WHERE handled_at IS NOT NULL AND handled_at < ?",
                (self._db.now() - older_than_s,))
