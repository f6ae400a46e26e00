"""The contract between the bot and the worker: job kinds, their lanes, payloads and results.

The bot writes payloads and reads results; the worker reads payloads and writes results; the
storage keeps both as JSON in the job row. Everything here is plain data (no engine, no
Telegram, no database), so the bot's process stays light. Paths are relative to the data
directory and always made by ``storage.DataDir``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any, TypeVar

from oneword.grammar import EditCommand

T = TypeVar("T")


class JobKind(StrEnum):
    """What a job asks of the worker."""

    LEARN = "learn"
    EDIT = "edit"
    STICKER = "sticker"
    PACK = "pack"


class ConceptKind(StrEnum):
    """What a learned concept depicts; the engine picks its learning prompts by it."""

    OBJECT = "object"
    PERSON = "person"
    STYLE = "style"


class Lane(StrEnum):
    """A worker lane: each has its own model, so short jobs never wait behind learning."""

    SHORT = "short"
    LONG = "long"

    @property
    def kinds(self) -> tuple[JobKind, ...]:
        """The job kinds this lane runs."""
        if self is Lane.LONG:
            return (JobKind.LEARN,)
        return (JobKind.EDIT, JobKind.STICKER, JobKind.PACK)

    @classmethod
    def of(cls, kind: JobKind | str) -> Lane:
        """The lane that runs ``kind``."""
        return cls.LONG if kind == JobKind.LEARN else cls.SHORT


# A failed job's error that is advice on what to ask instead (the command cannot be done on
# this photo as said), not a fault: the bot shows it as is, not as "... failed: ...".
ADVICE_MARK = "advice: "


def as_advice(text: str) -> str:
    """A job error that the bot shows as advice."""
    return ADVICE_MARK + text


def advice_in(error: str | None) -> str | None:
    """The advice a job error carries, None for an error that is a failure."""
    if error and error.startswith(ADVICE_MARK):
        return error[len(ADVICE_MARK):]
    return None


def to_json(value: Any) -> dict[str, Any]:
    """A payload or result as the dict stored in the job row (enums become their values)."""
    return asdict(value, dict_factory=lambda items: {
        k: v.value if isinstance(v, StrEnum) else v for k, v in items})


def from_json(cls: type[T], data: dict[str, Any] | None) -> T:
    """Rebuild a payload or result, ignoring keys this version does not know."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in (data or {}).items() if k in names})


@dataclass
class LearnPayload:
    """Learn a concept from photos."""

    name: str
    kind: ConceptKind
    photos: list[str]  # data-dir paths of the downloaded photos
    scope_chat_id: int  # where the concept will belong (private chat: its owner)
    media_ids: list[int] = field(default_factory=list)  # stored photos, deleted with the concept
    # per photo, what else it shows in the sender's words (its caption, "on a beach"); "" none
    descriptions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:  # from JSON, the kind arrives as its value
        self.kind = ConceptKind(self.kind)


@dataclass
class WordCheck:
    """The self-check of a learned word: how many of its drawings came out like the photos."""

    tries: int
    alike: int
    missing: list[str] = field(default_factory=list)  # photo words most drawings lack
    blank: int = 0  # drawings in which nothing like a subject was found


@dataclass
class LearnResult:
    concept_id: int
    concept_file: str
    preview: str | None  # a picture of the learned concept
    steps: int
    warnings: list[str] = field(default_factory=list)
    seen_as: str | None = None  # the model's words for the photos' subject, where learning began
    check: WordCheck | None = None  # None: the worker's model has no judge of likeness

    def __post_init__(self) -> None:  # from JSON, the check arrives as a dict
        if isinstance(self.check, dict):
            self.check = from_json(WordCheck, self.check)


# A failed learning job's error when some photos show something else than the rest: the bot
# names them and asks for them to be replaced or left out.
MIXED_PHOTOS_MARK = "mixed photos: "


@dataclass
class MixedPhotos:
    """The photos of a learning job that show something else than the others."""

    odd: list[int]  # photo numbers, from 1, in the order they were sent
    count: int  # photos sent
    missing: list[str] = field(default_factory=list)  # the others' words the odd ones lack

    def as_error(self) -> str:
        """The job error that carries this."""
        return MIXED_PHOTOS_MARK + json.dumps(asdict(self))

    @classmethod
    def in_error(cls, error: str | None) -> MixedPhotos | None:
        """What a job error carries, None for any other error."""
        if not error or not error.startswith(MIXED_PHOTOS_MARK):
            return None
        try:
            return from_json(cls, json.loads(error[len(MIXED_PHOTOS_MARK):]))
        except (ValueError, TypeError):
            return None


@dataclass
class EditPayload:
    """Run one edit command on a photo."""

    photo: str  # data-dir path
    photo_key: str  # stable id of the photo (Telegram's file_unique_id), for the inversion cache
    command: EditCommand  # parsed once, by the bot; its caption says what the photo shows
    concept_ids: list[int] = field(default_factory=list)  # concepts the command may use
    seed: int = 0
    as_file: bool = False  # the photo came as a file: the result goes back as a file (PNG)

    def __post_init__(self) -> None:
        if not isinstance(self.command, EditCommand):  # from JSON
            self.command = EditCommand.from_json(self.command)


@dataclass
class EditResult:
    image: str
    maps: str  # the attention maps picture ("why")
    source_prompt: str
    target_prompt: str
    mask: str | None = None  # white where the result may differ from the photo (PNG)


@dataclass
class StickerPayload:
    """Cut a photo's subject out as a sticker."""

    photo: str
    photo_key: str
    caption: str | None = None


@dataclass
class StickerResult:
    sticker: str  # 512 px WEBP


@dataclass
class PackPayload:
    """Draw a sticker pack of a learned word (or redo one sticker of an earlier pack)."""

    concept_id: int
    word: str  # the learned word's name, for the set's name and title
    seed: int = 0
    redo: int | None = None  # index of the one sticker to draw again; None: the whole pack
    pack_job: int | None = None  # a redo: the pack job whose sticker set it updates


@dataclass
class PackResult:
    stickers: list[str]  # data-dir paths, WEBP with its longer side 512 px, one per index
    emoji: list[str]  # the same as 100x100 PNG custom emoji
    emojis: list[str]  # one emoji character per sticker
    names: list[str]  # the expressions' names
    indexes: list[int]  # which stickers of the pack these are (all, or the redone one)

