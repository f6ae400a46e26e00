"""What a user reads when a job fails: what they can do about it, never the worker's insides.

An engine error's own message is written for developers and logs: it may name a stored file
("cannot read 3f9c...safetensors"), which tells a user nothing. Errors with such messages get
a text here that says what happened in the user's terms and what to do next.
"""

from __future__ import annotations

from engine.errors import ConceptFileError

WORD_FILE_UNREADABLE = ("a word it uses can't be read any more (its saved file is missing or "
                        "damaged). /forget that word and teach it again with /learn")


def failure_text(exc: Exception) -> str:
    """The reason shown to the user for a job that failed with ``exc`` (a user-facing or
    engine error)."""
    if isinstance(exc, ConceptFileError):
        return WORD_FILE_UNREADABLE
    return str(exc)
