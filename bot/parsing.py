"""Reading edit commands typed by people, without Telegram or storage.

Grammar (case-insensitive; "the", "a" and "an" are ignored; a leading ``/`` and ``@botname``
are allowed, so captions and group commands read the same)::

    add <name> [on the left|on the right|in the center]
    replace <word> with <name>
    restyle [as] <name>
    remove <word>
    ... | <what the photo shows>          optional description for the worker

``<name>`` is a concept name (checked against the storage naming rules); ``<word>`` is a word of
the photo's description. The result is a canonical command the worker's parser accepts, the
concept name to resolve, and the optional description.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from storage import InvalidConceptName, normalize_concept_name

ACTIONS = ("add", "replace", "restyle", "remove")
MAX_CAPTION_CHARS = 300
_ARTICLES = frozenset({"the", "a", "an"})
_POSITIONS = {"left": "on the left", "right": "on the right", "center": "in the center",
              "centre": "in the center", "middle": "in the center"}
_LEADING = re.compile(r"^\s*/?(?P<verb>[A-Za-z]+)(?:@(?P<bot>\w+))?(?=\s|$)")
_WORD = re.compile(r"[\w-]+")


class CommandError(ValueError):
    """An edit command that starts right but cannot be read; the message is for the user."""


@dataclass(frozen=True)
class EditCommand:
    """A parsed edit command."""

    action: str  # add | replace | restyle | remove
    concept: str | None  # the concept name it puts in (add, replace, restyle)
    subject: str | None  # the word of the photo it changes (replace, remove)
    position: str | None  # add: "on the left" | "on the right" | "in the center"
    caption: str | None  # what the photo shows, if the user said

    @property
    def text(self) -> str:
        """The canonical command the worker runs (without the description)."""
        if self.action == "add":
            return f"add {self.concept}" + (f" {self.position}" if self.position else "")
        if self.action == "replace":
            return f"replace {self.subject} with {self.concept}"
        if self.action == "restyle":
            return f"restyle as {self.concept}"
        return f"remove {self.subject}"


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
    :class:`CommandError` (with a reason for the user) if it does but cannot be read."""
    if not text:
        return None
    match = _LEADING.match(text)
    if match is None or match["verb"].lower() not in ACTIONS:
        return None
    action = match["verb"].lower()
    body, _, description = text[match.end():].partition("|")
    caption = " ".join(description.split()) or None
    if caption is not None and len(caption) > MAX_CAPTION_CHARS:
        raise CommandError(f"The description after '|' is too long (at most "
                           f"{MAX_CAPTION_CHARS} characters).")
    words = [w for w in body.split() if w.lower() not in _ARTICLES]
    if action == "add":
        return _add(words, caption)
    if action == "replace":
        return _replace(words, caption)
    if action == "restyle":
        return _restyle(words, caption)
    return _remove(words, caption)


def _name(word: str) -> str:
    try:
        return normalize_concept_name(word)
    except InvalidConceptName as exc:
        raise CommandError(f"\"{word}\" can't be a name: {exc}") from None


def _subject(word: str) -> str:
    if not _WORD.fullmatch(word):
        raise CommandError(f"\"{word}\" should be a single word of what the photo shows.")
    return word.lower()


def _add(words: list[str], caption: str | None) -> EditCommand:
    if not words:
        raise CommandError("Add what?")
    position = None
    rest = [w.lower() for w in words[1:] if w.lower() not in ("on", "in", "at")]
    if rest:
        if len(rest) != 1 or rest[0] not in _POSITIONS:
            raise CommandError("After the name I only understand a place like \"on the left\".")
        position = _POSITIONS[rest[0]]
    return EditCommand("add", _name(words[0]), None, position, caption)


def _replace(words: list[str], caption: str | None) -> EditCommand:
    lowered = [w.lower() for w in words]
    if "with" not in lowered:
        raise CommandError("Replace what with what? Say \"replace dog with mochi\".")
    i = lowered.index("with")
    if i != 1 or len(words) != 3:
        raise CommandError("Say one word to replace and one name: \"replace dog with mochi\".")
    return EditCommand("replace", _name(words[2]), _subject(words[0]), None, caption)


def _restyle(words: list[str], caption: str | None) -> EditCommand:
    rest = [w for w in words if w.lower() not in ("as", "in", "style")]
    if len(rest) != 1:
        raise CommandError("Restyle as what? Say \"restyle as inkwash\".")
    return EditCommand("restyle", _name(rest[0]), None, None, caption)


def _remove(words: list[str], caption: str | None) -> EditCommand:
    if len(words) != 1:
        raise CommandError("Say one word to remove: \"remove the man\".")
    return EditCommand("remove", None, _subject(words[0]), None, caption)
