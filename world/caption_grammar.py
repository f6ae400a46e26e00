"""How edits rewrite the sticker world's captions: whole phrases, not single words.

A world caption names each object in one phrase, "a big red circle on the left", then the
background ("with grass background"). Replacing the circle swaps the phrase's kind (and, for a
learned word, which brings its own look, drops its colour); removing it drops the phrase; adding
puts a new phrase at a place no phrase holds. The bundled model's captioner.json names
`WorldCaptionGrammar`, and the engine reaches it only through that (engine/captioning.py).
"""

from __future__ import annotations

import re

from engine.errors import PromptError
from oneword.grammar import Position
from world.scene import POSITION_PHRASES, SIZES

_PHRASE = re.compile(r"a (?:(?:small|big) )?(?:[\w<>_-]+ )?(?P<kind>[\w<>_-]+) "
                     r"(?P<where>" + "|".join(POSITION_PHRASES.values()) + ")")
# Where an add looks for a free place when the user names none.
_ADD_ORDER = (Position.RIGHT, Position.LEFT, Position.CENTER)


class WorldCaptionGrammar:
    """The sticker world's caption grammar (engine.captioning.CaptionGrammar)."""

    def with_added(self, caption: str, words: str, position: Position | None) -> str | None:
        """The caption with "a <words> <free place>" before its background."""
        taken = {m.group("where") for m in _PHRASE.finditer(caption)}
        if " with " not in caption or not taken:
            return None
        order = [position] if position is not None else list(_ADD_ORDER)
        free = [POSITION_PHRASES[p.value] for p in order
                if POSITION_PHRASES[p.value] not in taken]
        if not free:
            raise PromptError("there is no free spot in this picture"
                              + (f" {position.phrase}" if position is not None else ""))
        head, tail = caption.split(" with ", 1)
        return f"{head} and a {words} {free[0]} with {tail}"

    def with_replaced(self, caption: str, subject: str, words: str, learned: bool,
                      position: Position | None = None) -> tuple[str, tuple[str, ...]] | None:
        """The subject's phrase (the one at `position`, if given) about `words` instead, and
        the phrase words that go."""
        phrase = _phrase_of(caption, subject, position)
        if phrase is None:
            return None
        new_phrase = _phrase_with_kind(phrase, words, drop_colour=learned)
        replaced = tuple(w for w in phrase.split() if w not in new_phrase.split())
        return caption.replace(phrase, new_phrase, 1), replaced

    def without(self, caption: str, subject: str, position: Position | None = None
                ) -> str | None:
        """The caption without the subject's phrase (the one at `position`, if given)."""
        phrase = _phrase_of(caption, subject, position)
        if phrase is None:
            return None
        for joined in (f"{phrase} and ", f" and {phrase}", phrase):
            if joined in caption:
                rest = caption.replace(joined, "", 1).strip()
                return rest if not rest.startswith("with ") else f"a picture {rest}"
        return None


def _phrase_of(caption: str, kind: str, position: Position | None = None) -> str | None:
    """The first phrase about `kind`, or the one at `position` ("a small blue face on the
    right"); None when there is none."""
    where = POSITION_PHRASES[position.value] if position is not None else None
    return next((m.group(0) for m in _PHRASE.finditer(caption)
                 if m.group("kind") == kind and where in (None, m.group("where"))), None)


def _phrase_with_kind(phrase: str, words: str, drop_colour: bool) -> str:
    parts = phrase.split()
    where = " ".join(parts[-3:])
    head = parts[1:-4]  # size and colour, if any
    if drop_colour:
        head = [w for w in head if w in SIZES]
    return " ".join(["a", *head, words, where])
