"""Read-only views of control API records, so tests say ``msg.text`` not ``m["message"]...``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MessageRecord:
    """One message as the control API reports it (either side of the chat)."""

    raw: dict[str, Any]

    @property
    def message(self) -> dict[str, Any]:
        """The Telegram ``Message`` JSON (current version)."""
        return self.raw["message"]

    @property
    def message_id(self) -> int:
        return self.raw["message_id"]

    @property
    def chat_id(self) -> int:
        return self.raw["chat_id"]

    @property
    def from_bot(self) -> bool:
        return self.raw["from_bot"]

    @property
    def deleted(self) -> bool:
        return self.raw["deleted"]

    @property
    def delivered(self) -> bool:
        """Whether the bot got an update for it (group privacy mode may hide it)."""
        return self.raw["delivered"]

    @property
    def edit_count(self) -> int:
        return self.raw["edit_count"]

    @property
    def texts(self) -> list[str | None]:
        """Text (or caption) of every version, oldest first; the last is current."""
        return self.raw["texts"]

    @property
    def text(self) -> str | None:
        """Current text, or caption for media messages."""
        return self.message.get("text", self.message.get("caption"))

    @property
    def entities(self) -> list[dict[str, Any]]:
        return self.message.get("entities", self.message.get("caption_entities", []))

    @property
    def photo(self) -> list[dict[str, Any]] | None:
        """PhotoSize list, smallest first."""
        return self.message.get("photo")

    @property
    def photo_file_id(self) -> str | None:
        """``file_id`` of the largest photo size."""
        return self.photo[-1]["file_id"] if self.photo else None

    @property
    def sticker(self) -> dict[str, Any] | None:
        return self.message.get("sticker")

    @property
    def document(self) -> dict[str, Any] | None:
        return self.message.get("document")

    @property
    def animation(self) -> dict[str, Any] | None:
        return self.message.get("animation")

    @property
    def media_group_id(self) -> str | None:
        return self.message.get("media_group_id")

    @property
    def reply_to_message_id(self) -> int | None:
        replied = self.message.get("reply_to_message")
        return replied["message_id"] if replied else None

    @property
    def reply_markup(self) -> dict[str, Any] | None:
        return self.message.get("reply_markup")

    @property
    def reply_keyboard(self) -> dict[str, Any] | None:
        """A non-inline ``reply_markup`` the bot sent (reply keyboard, remove, force reply)."""
        return self.raw.get("reply_keyboard")

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """Inline buttons, flattened row by row."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [button for row in rows for button in row]

    def file_id(self) -> str | None:
        """The main file of the message: largest photo, sticker, animation or document."""
        if self.photo:
            return self.photo_file_id
        for media in (self.sticker, self.animation, self.document):
            if media:
                return media["file_id"]
        return None

    def __repr__(self) -> str:
        kind = next(
            (k for k in ("photo", "sticker", "animation", "document") if k in self.message),
            "text",
        )
        side = "bot" if self.from_bot else "user"
        return f"<{side} message {self.chat_id}/{self.message_id} {kind}: {self.text!r}>"
