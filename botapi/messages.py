"""The message log: every message of every chat, both sides, with its edit history.

Tests and the playground read the conversation from here, so a message keeps its previous
versions (``history``) instead of being overwritten, and deletions only set a flag.
"""

from __future__ import annotations

import copy
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StoredMessage:
    """One message: its current Telegram JSON plus simulation metadata."""

    chat_id: int
    message_id: int
    data: dict[str, Any]
    from_bot: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False
    delivered: bool = True
    reply_keyboard: dict[str, Any] | None = None

    @property
    def body(self) -> str | None:
        """The text, or the caption of a media message."""
        return self.data.get("text", self.data.get("caption"))

    def edit(self, changes: dict[str, Any], removed: tuple[str, ...] = ()) -> None:
        """Apply an edit: remember the old version, update fields, stamp ``edit_date``."""
        self.history.append(copy.deepcopy(self.data))
        for key in removed:
            self.data.pop(key, None)
        self.data.update(changes)
        self.data["edit_date"] = int(time.time())

    def snapshot(self) -> dict[str, Any]:
        """Copy for embedding as ``reply_to_message`` (which never nests further)."""
        data = copy.deepcopy(self.data)
        data.pop("reply_to_message", None)
        return data

    def to_control_json(self) -> dict[str, Any]:
        """The record the control API returns: message plus side, edits and flags."""
        versions = [*self.history, self.data]
        return {
            "chat_id": self.chat_id,
            "message_id": self.message_id,
            "from_bot": self.from_bot,
            "deleted": self.deleted,
            "delivered": self.delivered,
            "edit_count": len(self.history),
            "texts": [v.get("text", v.get("caption")) for v in versions],
            "reply_keyboard": self.reply_keyboard,
            "message": self.data,
        }


class MessageLog:
    """Messages by chat in send order, with Telegram's per-chat message ids."""

    def __init__(self) -> None:
        self._by_chat: dict[int, list[StoredMessage]] = defaultdict(list)
        self._index: dict[tuple[int, int], StoredMessage] = {}
        self._next_id: dict[int, int] = defaultdict(lambda: 1)

    def next_id(self, chat_id: int) -> int:
        """Allocate the next message id in ``chat_id``."""
        message_id = self._next_id[chat_id]
        self._next_id[chat_id] = message_id + 1
        return message_id

    def add(self, message: StoredMessage) -> StoredMessage:
        """Append a message to its chat."""
        self._by_chat[message.chat_id].append(message)
        self._index[(message.chat_id, message.message_id)] = message
        return message

    def get(self, chat_id: int, message_id: int) -> StoredMessage | None:
        """A message by chat and id, deleted ones included."""
        return self._index.get((chat_id, message_id))

    def live(self, chat_id: int, message_id: int) -> StoredMessage | None:
        """A message that exists and is not deleted."""
        message = self._index.get((chat_id, message_id))
        return None if message is None or message.deleted else message

    def in_chat(self, chat_id: int) -> list[StoredMessage]:
        """All messages of a chat in order."""
        return list(self._by_chat.get(chat_id, []))

    def count(self) -> int:
        """Number of messages in the world."""
        return len(self._index)
