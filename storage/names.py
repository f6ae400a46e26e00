"""Concept names as the storage keeps them: shown as typed, compared by their canonical form.

The rule itself is :mod:`oneword.names` (one rule for the bot, the storage and the engine); this
module turns its refusals into :class:`InvalidConceptName`. Names are never used as file names.
"""

from __future__ import annotations

from oneword.names import MAX_NAME_LENGTH as MAX_CONCEPT_NAME_LENGTH
from oneword.names import InvalidName, display_name

from .errors import InvalidConceptName

__all__ = ["MAX_CONCEPT_NAME_LENGTH", "concept_name_key", "normalize_concept_name"]


def normalize_concept_name(name: object) -> str:
    """``name`` stripped, with its capitalization kept for display, or
    :class:`InvalidConceptName`; use :func:`concept_name_key` to compare."""
    try:
        return display_name(name)
    except InvalidName as exc:
        raise InvalidConceptName(str(exc)) from None


def concept_name_key(name: str) -> str:
    """The case-insensitive comparison key of a (valid) concept name."""
    return normalize_concept_name(name).lower()
