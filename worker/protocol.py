"""What a stored job asks of the worker and what the worker leaves as its result.

The bot writes payloads and reads results; the worker reads payloads and writes results. This
module is their only shared vocabulary: plain JSON-able dataclasses, no engine, no Telegram.
Paths are relative to the data directory and always made by `storage.DataDir`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

T = TypeVar("T")

LEARN, EDIT, STICKER = "learn", "edit", "sticker"
SHORT_KINDS = (EDIT, STICKER)  # run on their own lane, never behind a learning job
LONG_KINDS = (LEARN,)


def to_json(value: Any) -> dict[str, Any]:
    """A payload or result as the dict stored in the job row."""
    return asdict(value)


def from_json(cls: type[T], data: dict[str, Any] | None) -> T:
    """Rebuild a payload or result, ignoring keys this version does not know."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in (data or {}).items() if k in names})


@dataclass
class LearnPayload:
    """Learn a concept from photos."""

    name: str
    kind: str  # object | person | style
    photos: list[str]  # data-dir paths of the downloaded photos
    scope_chat_id: int  # where the concept will belong (private chat: its owner)
    media_ids: list[int] = field(default_factory=list)  # stored photos, deleted with the concept


@dataclass
class LearnResult:
    concept_id: int
    concept_file: str
    preview: str | None  # a picture of the learned concept
    steps: int
    warnings: list[str] = field(default_factory=list)


@dataclass
class EditPayload:
    """Run one edit command on a photo."""

    photo: str  # data-dir path
    photo_key: str  # stable id of the photo (Telegram's file_unique_id), for the inversion cache
    command: str  # e.g. "replace circle with mochi"
    caption: str | None = None  # what the photo shows, if the user said
    concept_ids: list[int] = field(default_factory=list)  # concepts the command may use
    seed: int = 0


@dataclass
class EditResult:
    image: str
    maps: str  # the attention maps picture ("why")
    source_prompt: str
    target_prompt: str


@dataclass
class StickerPayload:
    """Cut a photo's subject out as a sticker."""

    photo: str
    photo_key: str
    caption: str | None = None


@dataclass
class StickerResult:
    sticker: str  # 512 px WEBP
