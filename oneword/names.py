"""The one rule for concept names, shared by the bot, the storage, the engine and the CLI.

A concept name is what people type in commands ("add rex", "restyle as inkwash") and becomes the
placeholder token ``<rex>`` in the model's prompts. Text encoders' tokenizers lowercase and
split non-ASCII text unpredictably, so a name is 1 to 32 characters from ``a-z``, ``0-9``, ``_``
and ``-``, compared without case: "Rex" may be shown as typed, and is the word ``rex``.
A name is also never one of the words the edit grammar (:mod:`oneword.grammar`) drops from
commands ("the", "as", ...): "restyle as style" could never reach a word named "style". The
grammar takes those words from here, so the two cannot drift apart.
(Standard library only, so the bot, the storage and the engine share it.)
"""

from __future__ import annotations

import re

MAX_NAME_LENGTH = 32
NAME_RULE = f"1-{MAX_NAME_LENGTH} letters a-z, digits, '_' or '-'"
NAME_CHARS = "a-z0-9_-"  # for regular expressions: [NAME_CHARS]
_NAME = re.compile(rf"[{NAME_CHARS}]{{1,{MAX_NAME_LENGTH}}}")
ARTICLES = frozenset({"the", "a", "an"})  # dropped from every edit command
STYLE_FILLERS = frozenset({"as", "in", "style"})  # dropped from "restyle [as] <name>"
GRAMMAR_WORDS = ARTICLES | STYLE_FILLERS  # never names: the grammar drops them
QUOTE_CHARS = 40  # of text that is no name, at most this much is quoted back to people


def quoted(text: str) -> str:
    """``text`` for a message that quotes what someone typed: at most QUOTE_CHARS
    characters, with "..." when cut (a 4,000-character word is never echoed whole)."""
    return text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS] + "..."


class InvalidName(ValueError):
    """Text that cannot be a concept name; the message says why, for people."""


def display_name(text: object) -> str:
    """``text`` stripped, as typed (for showing), if it is a valid name, else
    :class:`InvalidName`."""
    if not isinstance(text, str):
        raise InvalidName("A name must be text.")
    name = text.strip()
    if not name:
        raise InvalidName("A name cannot be empty.")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"A name can have at most {MAX_NAME_LENGTH} characters "
                          f"({len(name)} given).")
    if not _NAME.fullmatch(name.lower()):
        raise InvalidName(f"A name may only use {NAME_RULE}.")
    if name.lower() in GRAMMAR_WORDS:
        words = ", ".join(f'"{word}"' for word in sorted(GRAMMAR_WORDS))
        raise InvalidName(f'"{name}" is one of the words commands skip ({words}), so it '
                          f"could never be used; pick another name.")
    return name


def concept_name(text: object) -> str:
    """The canonical (lowercase) concept name in ``text``, which may be written ``<name>``;
    :class:`InvalidName` if it cannot be one."""
    if isinstance(text, str):
        text = text.strip().removeprefix("<").removesuffix(">")
    return display_name(text).lower()


def is_concept_name(text: object) -> bool:
    """Whether ``text`` is a valid concept name as typed."""
    try:
        concept_name(text)
    except InvalidName:
        return False
    return True


_PLACEHOLDERS = re.compile(rf"<([{NAME_CHARS}]+)>(?:\s+<\1>_\d+)*")


def readable_prompt(prompt: str) -> str:
    """A model prompt as people write it: each learned word's tokens (``<rex> <rex>_1 ...``)
    become the word itself (``rex``)."""
    return _PLACEHOLDERS.sub(lambda match: match.group(1), prompt)
