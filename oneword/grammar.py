"""The one grammar of edit commands, for the bot, the job payloads and ``oneword edit``.

Case-insensitive; "the", "a" and "an" are ignored; a leading ``/`` and ``@botname`` are
allowed, so captions, replies and group commands read the same::

    add <name> [on the left|on the right|in the center]
    replace <word> [on the left|...] with <name>      (or "replace the left <word> with <name>")
    restyle [as] <name>
    remove <word> [on the left|...]                   (or "remove the left <word>")
    ... | <what the photo shows>          optional description of the photo

A place after ``add`` says where the new thing goes; after the word of ``replace`` or
``remove`` it says which of several such things ("replace the man on the left with anna").

``<name>`` is a concept name (:mod:`oneword.names`, ``<name>`` with brackets too); ``<word>``
is a word of the photo's description. Parsing yields a typed :class:`EditCommand`, which a job
payload carries as is: nothing downstream reads the text again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from oneword.names import ARTICLES, STYLE_FILLERS, InvalidName, concept_name, quoted


class EditAction(StrEnum):
    """What an edit does."""

    ADD = "add"
    REPLACE = "replace"
    RESTYLE = "restyle"
    REMOVE = "remove"


class Position(StrEnum):
    """Where ``add`` puts the new thing, or which of several things ``replace`` and ``remove``
    change."""

    LEFT = "left"
    CENTER = "center"
    RIGHT = "right"

    @property
    def phrase(self) -> str:
        """How people say it: "on the left", "in the center"."""
        return "in the center" if self is Position.CENTER else f"on the {self.value}"


VERBS = tuple(action.value for action in EditAction)
USAGE = ("add <name> [on the left], replace <word> with <name>, restyle as <name>, "
         "remove <word>; which of several: replace the man on the left with <name>")
MAX_CAPTION_CHARS = 300
MAX_SUBJECT_CHARS = 40  # a word of what the photo shows
_POSITION_WORDS = {"left": Position.LEFT, "right": Position.RIGHT, "center": Position.CENTER,
                   "centre": Position.CENTER, "middle": Position.CENTER}
_LEADING = re.compile(r"^\s*/?(?P<verb>[A-Za-z]+)(?:@(?P<bot>\w+))?(?=\s|$)")
_PLACE_FILLERS = ("on", "in", "at")  # "on the left": the article is gone already
_WORD = re.compile(r"[\w-]+")


class CommandError(ValueError):
    """An edit command that starts with a verb but cannot be read; the message is for people."""


@dataclass(frozen=True)
class EditCommand:
    """A parsed edit command: what to do, to which word of the photo, with which concept."""

    action: EditAction
    concept: str | None = None  # the concept it puts in (add, replace, restyle)
    subject: str | None = None  # the word of the photo it changes (replace, remove)
    position: Position | None = None  # add: where; replace, remove: which one
    caption: str | None = None  # what the photo shows, if the user said

    def __post_init__(self) -> None:  # rebuilt from JSON, the enums arrive as their values
        object.__setattr__(self, "action", EditAction(self.action))
        if self.position is not None:
            object.__setattr__(self, "position", Position(self.position))

    @property
    def text(self) -> str:
        """The command in canonical words (without the description), for people and logs."""
        if self.action is EditAction.ADD:
            return f"add {self.concept}" + (f" {self.position.phrase}" if self.position else "")
        place = f" {self.position.phrase}" if self.position else ""
        if self.action is EditAction.REPLACE:
            return f"replace {self.subject}{place} with {self.concept}"
        if self.action is EditAction.RESTYLE:
            return f"restyle as {self.concept}"
        return f"remove {self.subject}{place}"

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> EditCommand:
        """The command stored in a job payload (older payloads stored its text)."""
        if isinstance(data, str):
            command = parse_edit(data)
            if command is None:
                raise CommandError(f"'{data}' is not an edit command. Commands: {USAGE}.")
            return command
        return cls(**{k: data[k] for k in ("action", "concept", "subject", "position",
                                           "caption") if k in data})


def command_addressee(text: str | None) -> tuple[str, str | None] | None:
    """``("replace", "somebot")`` for ``"/replace@somebot ..."``; None if not a slash command."""
    if not text or not text.lstrip().startswith("/"):
        return None
    match = _LEADING.match(text)
    if match is None:
        return None
    return match["verb"].lower(), match["bot"]


def parse_edit(text: str | None) -> EditCommand | None:
    """The edit command in ``text``, None if it does not start with an edit verb, or raise
    :class:`CommandError` (with a reason for people) if it does but cannot be read."""
    if not text:
        return None
    match = _LEADING.match(text)
    if match is None or match["verb"].lower() not in VERBS:
        return None
    action = EditAction(match["verb"].lower())
    body, _, description = text[match.end():].partition("|")
    caption = " ".join(description.split()) or None
    if caption is not None and len(caption) > MAX_CAPTION_CHARS:
        raise CommandError(f"The description after '|' is too long (at most "
                           f"{MAX_CAPTION_CHARS} characters).")
    words = [w for w in body.split() if w.lower() not in ARTICLES]
    read = {EditAction.ADD: _add, EditAction.REPLACE: _replace, EditAction.RESTYLE: _restyle,
            EditAction.REMOVE: _remove}[action]
    return read(words, caption)


def _name(word: str) -> str:
    try:
        return concept_name(word)
    except InvalidName as exc:
        raise CommandError(f"\"{quoted(word)}\" can't be a name. {exc}") from None


def _subject(word: str) -> str:
    word = word.removeprefix("<").removesuffix(">")
    if not _WORD.fullmatch(word) or len(word) > MAX_SUBJECT_CHARS:
        raise CommandError(f"\"{quoted(word)}\" should be a single word of what the photo "
                           f"shows.")
    return word.lower()


def _add(words: list[str], caption: str | None) -> EditCommand:
    if not words:
        raise CommandError("Add what? Say \"add mochi\".")
    position = None
    rest = [w.lower() for w in words[1:] if w.lower() not in _PLACE_FILLERS]
    if rest:
        if len(rest) != 1 or rest[0] not in _POSITION_WORDS:
            raise CommandError("After the name I only understand a place like \"on the left\".")
        position = _POSITION_WORDS[rest[0]]
    return EditCommand(EditAction.ADD, concept=_name(words[0]), position=position,
                       caption=caption)


def _placed_subject(words: list[str]) -> tuple[str, Position | None] | None:
    """The word of the photo and which one: "man", "man on left", "left man"; None when the
    words are not one of these."""
    rest = [w for w in words if w.lower() not in _PLACE_FILLERS]
    places = [w for w in rest if w.lower() in _POSITION_WORDS]
    others = [w for w in rest if w.lower() not in _POSITION_WORDS]
    if len(others) != 1 or len(places) > 1:
        return None
    return _subject(others[0]), (_POSITION_WORDS[places[0].lower()] if places else None)


def _replace(words: list[str], caption: str | None) -> EditCommand:
    lowered = [w.lower() for w in words]
    if "with" not in lowered:
        raise CommandError("Replace what with what? Say \"replace dog with mochi\".")
    split = lowered.index("with")
    subject = _placed_subject(words[:split])
    if subject is None or len(words) != split + 2:
        raise CommandError("Say one word to replace (and which one, if you like) and one name: "
                           "\"replace dog with mochi\", \"replace the man on the left with "
                           "anna\".")
    return EditCommand(EditAction.REPLACE, concept=_name(words[split + 1]), subject=subject[0],
                       position=subject[1], caption=caption)


def _restyle(words: list[str], caption: str | None) -> EditCommand:
    rest = [w for w in words if w.lower() not in STYLE_FILLERS]
    if len(rest) != 1:
        raise CommandError("Restyle as what? Say \"restyle as inkwash\".")
    return EditCommand(EditAction.RESTYLE, concept=_name(rest[0]), caption=caption)


def _remove(words: list[str], caption: str | None) -> EditCommand:
    subject = _placed_subject(words)
    if subject is None:
        raise CommandError("Say one word to remove (and which one, if you like): \"remove the "
                           "man\", \"remove the man on the right\".")
    return EditCommand(EditAction.REMOVE, subject=subject[0], position=subject[1],
                       caption=caption)
