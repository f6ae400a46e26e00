"""Telegram chats the bot has seen: private chats and groups.

A chat's type decides who a concept learned in it belongs to (see :mod:`storage.concepts`).
"""

from __future__ import annotations

from .db import Database
from .errors import ChatNotFound, ConceptExists, Conflict, InvalidArgument
from .models import ChatType, StoredChat
from .rows import from_row, one_row


def parse_chat_type(value: ChatType | str) -> ChatType:
    """Return ``value`` as a :class:`ChatType` or raise :class:`InvalidArgument`."""
    try:
        return ChatType(value)
    except ValueError:
        raise InvalidArgument(
            f"Unsupported chat type {value!r}: expected private, group or supergroup."
        ) from None


class ChatRepo:
    """Create, refresh and read chats."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(self, chat_id: int, chat_type: ChatType | str, title: str = "") -> StoredChat:
        """Insert the chat or refresh its type and title; return the row."""
        if not isinstance(chat_id, int) or isinstance(chat_id, bool):
            raise InvalidArgument(f"chat_id must be an int, not {chat_id!r}.")
        kind = parse_chat_type(chat_type)
        now = self._db.now()
        async with self._db.transaction() as tx:
            current = await tx.value("SELECT type FROM chats WHERE id = ?", (chat_id,))
            if current is not None and (current == "private") != (kind is ChatType.PRIVATE):
                # A private chat never becomes a group (Telegram gives groups new ids), and
                # flipping it would silently change who owns the concepts learned there.
                raise InvalidArgument(f"Chat {chat_id} cannot change from {current} to {kind}.")
            row = await tx.one(
                """
                INSERT INTO chats (id, type, title, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET
                    type = excluded.type, title = excluded.title,
                    updated_at = excluded.updated_at
                RETURNING *
                """,
                (chat_id, kind.value, title or "", now, now),
            )
        assert row is not None
        return from_row(StoredChat, row)

    async def get(self, chat_id: int) -> StoredChat:
        """Return the chat or raise :class:`ChatNotFound`."""
        return await one_row(self._db, StoredChat, "SELECT * FROM chats WHERE id = ?",
                             (chat_id,), ChatNotFound(f"Unknown chat {chat_id}."))

    async def migrate_to_supergroup(
        self, old_chat_id: int, new_chat_id: int, title: str = ""
    ) -> StoredChat:
        """Follow Telegram's group -> supergroup upgrade (the chat gets a new id).

        The group's concepts, the concepts shared into it and its unfinished jobs move to the new
        id, so nothing the group learned is lost. Raises :class:`ConceptExists` (and changes
        nothing) if the new chat already has concepts with the same names.
        """
        now = self._db.now()
        async with self._db.transaction() as tx:
            old = await tx.one("SELECT * FROM chats WHERE id = ?", (old_chat_id,))
            if old is None:
                raise ChatNotFound(f"Unknown chat {old_chat_id}.")
            if old["type"] == ChatType.PRIVATE.value:
                raise InvalidArgument(f"Chat {old_chat_id} is a private chat, not a group.")
            row = await tx.one(
                """
                INSERT INTO chats (id, type, title, created_at, updated_at)
                VALUES (?, 'supergroup', ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET
                    type = 'supergroup', title = excluded.title, updated_at = excluded.updated_at
                RETURNING *
                """,
                (new_chat_id, title or old["title"], now, now),
            )
            try:
                await tx.execute(
                    "UPDATE concepts SET scope_chat_id = ? WHERE scope_chat_id = ?",
                    (new_chat_id, old_chat_id),
                )
            except Conflict:
                raise ConceptExists(
                    f"Chat {new_chat_id} already has concepts named like those of {old_chat_id}."
                ) from None
            await tx.execute(
                """
                UPDATE concept_shares SET chat_id = ?
                WHERE chat_id = ? AND concept_id NOT IN
                      (SELECT concept_id FROM concept_shares WHERE chat_id = ?)
                """,
                (new_chat_id, old_chat_id, new_chat_id),
            )
            await tx.execute("DELETE FROM concept_shares WHERE chat_id = ?", (old_chat_id,))
            # Unfinished jobs and finished-but-undelivered ones answer in the new chat.
            await tx.execute(
                "UPDATE jobs SET chat_id = ? WHERE chat_id = ? AND delivered = 0",
                (new_chat_id, old_chat_id),
            )
        assert row is not None
        return from_row(StoredChat, row)
