"""Concept naming rules, shared by the bot (early feedback) and the storage (enforcement).

A concept name is what a user types in commands ("add rex", "restyle as vangogh"), so it must be
a single word: 1 to 32 characters, each a letter (any script), a decimal digit, ``_`` or ``-``.
Names are compared case-insensitively; the comparison key is the Unicode case fold of the
NFC-normalized name, so "Rex", "REX" and "rex" collide, and so do visually identical names typed
with different Unicode compositions. Names are never used as file names.
"""

from __future__ import annotations

import unicodedata

from .errors import InvalidConceptName

MAX_CONCEPT_NAME_LENGTH = 32
_EXTRA_CHARS = frozenset("_-")


def normalize_concept_name(name: object) -> str:
    """Return the canonical (NFC, stripped) form of ``name`` or raise :class:`InvalidConceptName`.

    The original capitalization is kept for display; use :func:`concept_name_key` to compare.
    """
    if not isinstance(name, str):
        raise InvalidConceptName("A concept name must be text.")
    text = unicodedata.normalize("NFC", name.strip())
    if not text:
        raise InvalidConceptName("A concept name cannot be empty.")
    if len(text) > MAX_CONCEPT_NAME_LENGTH:
        raise InvalidConceptName(
            f"A concept name can have at most {MAX_CONCEPT_NAME_LENGTH} characters "
            f"({len(text)} given)."
        )
    bad = sorted({ch for ch in text if not (ch.isalpha() or ch.isdecimal() or ch in _EXTRA_CHARS)})
    if bad:
        shown = " ".join(repr(ch) for ch in bad[:5])
        raise InvalidConceptName(
            f"A concept name may only contain letters, digits, '_' and '-' (not {shown})."
        )
    return text


def concept_name_key(name: str) -> str:
    """Return the case-insensitive comparison key of a (valid) concept name."""
    return normalize_concept_name(name).casefold()
