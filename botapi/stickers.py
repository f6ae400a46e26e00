"""Sticker sets created by the bot, with Telegram's naming and size rules."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .errors import bad_request
from .files import StoredFile
from .media import sticker_json

STICKER_TYPES = ("regular", "mask", "custom_emoji")
# Stickers a set may hold, by its type (Telegram: 120 stickers, 200 custom emoji).
MAX_STICKERS = {"regular": 120, "mask": 120, "custom_emoji": 200}
MAX_INITIAL_STICKERS = 50  # createNewStickerSet's list
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@dataclass
class StickerSet:
    """One set: its name, title, owner and stickers in order."""

    name: str
    title: str
    owner_id: int
    sticker_type: str = "regular"
    stickers: list[StoredFile] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``StickerSet`` object of ``getStickerSet``."""
        return {
            "name": self.name,
            "title": self.title,
            "sticker_type": self.sticker_type,
            "stickers": [sticker_json(s) for s in self.stickers],
        }


class StickerSets:
    """All sticker sets by (case-insensitive) name."""

    def __init__(self, bot_username: str) -> None:
        self._suffix = f"_by_{bot_username}".lower()
        self._sets: dict[str, StickerSet] = {}

    def validate_name(self, name: str) -> None:
        """Telegram's rule: letters, digits, underscores, starts with a letter, ends _by_bot."""
        if (
            not _NAME.match(name)
            or "__" in name
            or not name.lower().endswith(self._suffix)
            or len(name) == len(self._suffix)
        ):
            raise bad_request("invalid sticker set name is specified")

    @staticmethod
    def validate_type(sticker_type: str) -> None:
        """regular, mask or custom_emoji."""
        if sticker_type not in STICKER_TYPES:
            raise bad_request("wrong sticker type specified")

    def create(self, name: str, title: str, owner_id: int, sticker_type: str) -> StickerSet:
        """Register a new empty set (stickers are added by the caller)."""
        self.validate_name(name)
        self.validate_type(sticker_type)
        if not 1 <= len(title) <= 64:
            raise bad_request("invalid sticker set title is specified")
        if name.lower() in self._sets:
            raise bad_request("sticker set name is already occupied")
        created = StickerSet(name, title, owner_id, sticker_type)
        self._sets[name.lower()] = created
        return created

    def require(self, name: str) -> StickerSet:
        """A set by name or ``STICKERSET_INVALID``."""
        found = self._sets.get(name.lower())
        if found is None:
            raise bad_request("STICKERSET_INVALID")
        return found

    def add(self, sticker_set: StickerSet, sticker: StoredFile) -> None:
        """Append a sticker, within the set type's limit (MAX_STICKERS)."""
        if len(sticker_set.stickers) >= MAX_STICKERS[sticker_set.sticker_type]:
            raise bad_request("STICKERS_TOO_MUCH")
        self._adopt(sticker_set, sticker)
        sticker_set.stickers.append(sticker)

    def replace(self, sticker_set: StickerSet, old_file_id: str, sticker: StoredFile) -> None:
        """Put a sticker in the place of one of the set's (``replaceStickerInSet``)."""
        places = [i for i, s in enumerate(sticker_set.stickers) if s.file_id == old_file_id]
        if not places:
            raise bad_request("STICKER_INVALID")
        self._adopt(sticker_set, sticker)
        sticker_set.stickers[places[0]] = sticker

    @staticmethod
    def _adopt(sticker_set: StickerSet, sticker: StoredFile) -> None:
        sticker.extra["set_name"] = sticker_set.name
        sticker.extra["type"] = sticker_set.sticker_type
        if sticker_set.sticker_type == "custom_emoji":
            sticker.extra["custom_emoji_id"] = sticker.file_unique_id

    def delete(self, name: str) -> None:
        """Remove a set entirely."""
        self.require(name)
        del self._sets[name.lower()]

    def find_sticker(self, file_id: str) -> StickerSet | None:
        """The set holding a sticker, if any."""
        for sticker_set in self._sets.values():
            if any(s.file_id == file_id for s in sticker_set.stickers):
                return sticker_set
        return None

    def all(self) -> list[StickerSet]:
        return list(self._sets.values())
